/*!
 * Abonent supervisor page: who is on the line, the queue, every open conversation
 * (read-only) and reassignment. Uses the helpers operator.js puts on window.AbonentDesk.
 * As there, data reaches the page only as text (textContent / createElement).
 */
(function () {
  "use strict";

  var D = window.AbonentDesk;
  if (!D || !document.body.classList.contains("page-supervisor")) return;

  var api = D.api;
  var el = D.el;
  var $ = D.$;

  var state = {
    team: [],
    conversations: [],
    fetchedAt: 0,
    longest: 0,
    queueLength: null,
    selected: null,
    viewSeq: 0
  };
  var log = new D.MessageLog($("sv-log"));
  var channelTypes = {};

  function sinceText(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "—";
    var secs = (Date.now() - d.getTime()) / 1000;
    return D.formatTime(iso) + " (" + D.formatDuration(secs) + ")";
  }

  function statusBadge(status) {
    return el("span", { className: "st st-" + String(status || "").replace(/[^a-z]/g, ""), text: D.STATUS_LABELS[status] || status || "" });
  }

  async function loadAll() {
    var results = await Promise.all([api("GET", "/operators"), api("GET", "/conversations?mine=0")]);
    var team = results[0] || {};
    var convs = results[1] || {};
    state.team = Array.isArray(team.operators) ? team.operators : [];
    state.conversations = Array.isArray(convs.conversations) ? convs.conversations : [];
    state.fetchedAt = Date.now();
    state.longest = team.longest_wait_seconds || 0;
    state.queueLength = typeof team.queue_length === "number" ? team.queue_length : null;
    render();
  }

  function render() {
    var online = state.team.filter(function (u) {
      return u.status === "online";
    });
    var onBreak = state.team.filter(function (u) {
      return u.status === "break";
    });
    var queued = state.conversations.filter(function (c) {
      return c.status === "queued";
    });
    $("sv-queue-length").textContent = String(state.queueLength !== null ? state.queueLength : queued.length);
    $("sv-online").textContent = String(online.length);
    $("sv-break").textContent = String(onBreak.length);

    // Operators: those working first, then the rest.
    var team = state.team.slice().sort(D.byStatusThenName);
    var body = $("sv-operators").tBodies[0];
    D.clear(body);
    team.forEach(function (u) {
      body.appendChild(
        el("tr", { attrs: { "data-user-id": u.id, "data-status": u.status } }, [
          el("td", null, [el("span", { text: u.name }), el("span", { className: "muted small", text: " " + (u.login || "") })]),
          el("td", { attrs: { "data-label": "Статус" } }, [statusBadge(u.status)]),
          el("td", { text: sinceText(u.status_since), attrs: { "data-label": "В статусе с" } }),
          el("td", { text: (u.load || 0) + " / " + (u.max_chats || 0), attrs: { "data-label": "Нагрузка" } }),
          el("td", { text: (u.groups || []).join(", ") || "—", attrs: { "data-label": "Группы" } })
        ])
      );
    });

    var cbody = $("sv-conversations").tBodies[0];
    D.clear(cbody);
    state.conversations.forEach(function (c) {
      var last = c.last_message || {};
      var name = c.contact_name || "Клиент #" + c.contact_id;
      var openBtn = el("button", { text: "Открыть", attrs: { type: "button", "aria-label": "Открыть диалог: " + name } });
      openBtn.addEventListener("click", function () {
        select(c.conversation_id);
      });
      var wait = el("td", { className: "conv-wait", attrs: { "data-wait": c.waiting_seconds || 0, "data-label": "Ждёт" } });
      if (!c.waiting_seconds) wait.setAttribute("data-static", "1");
      cbody.appendChild(
        el(
          "tr",
          {
            attrs: {
              "data-id": c.conversation_id,
              "aria-selected": c.conversation_id === state.selected ? "true" : "false"
            }
          },
          [
            el("td", { text: name }),
            el("td", { text: D.channelLabel(c.channel_type, c.channel_id), attrs: { "data-label": "Канал" } }),
            el("td", {
              text: (D.CONV_STATUS_LABELS[c.status] || c.status) + (c.group ? " · " + c.group : ""),
              attrs: { "data-label": "Состояние" }
            }),
            el("td", { text: c.assignee_name || (c.assignee_id ? "#" + c.assignee_id : "—"), attrs: { "data-label": "Оператор" } }),
            wait,
            el("td", { className: "clip", text: last.text || "—", title: last.text || "", attrs: { "data-label": "Последнее" } }),
            el("td", null, [openBtn])
          ]
        )
      );
    });
    D.show($("sv-conversations-empty"), state.conversations.length === 0);
    fillAssignees(team);
    tick();
  }

  function tick() {
    var elapsed = state.fetchedAt ? (Date.now() - state.fetchedAt) / 1000 : 0;
    Array.prototype.forEach.call(document.querySelectorAll(".conv-wait"), function (node) {
      if (node.getAttribute("data-static")) {
        node.textContent = "—";
        return;
      }
      node.textContent = D.formatDuration((Number(node.getAttribute("data-wait")) || 0) + elapsed);
    });
    var hasQueue = state.conversations.some(function (c) {
      return c.status === "queued";
    });
    $("sv-longest").textContent = hasQueue || state.longest ? D.formatDuration(state.longest + elapsed) : "—";
  }

  function fillAssignees(team) {
    var sel = $("sv-assignee");
    var keep = sel.value;
    D.clear(sel);
    // As for a transfer: only somebody on the line can be given a chat (the customer is
    // told they joined), so the others are shown but cannot be picked.
    team.forEach(function (u) {
      var label = u.name + " — " + (D.STATUS_LABELS[u.status] || u.status) + " (" + (u.load || 0) + "/" + (u.max_chats || 0) + ")";
      var online = u.status === "online";
      sel.appendChild(el("option", { text: online ? label : label + ", назначить нельзя", attrs: { value: u.id, disabled: !online } }));
    });
    var keptOnline = team.some(function (u) {
      return String(u.id) === keep && u.status === "online";
    });
    if (keptOnline) sel.value = keep;
  }

  async function select(id) {
    state.selected = id;
    Array.prototype.forEach.call($("sv-conversations").tBodies[0].rows, function (row) {
      row.setAttribute("aria-selected", Number(row.getAttribute("data-id")) === id ? "true" : "false");
    });
    log.reset();
    D.setError($("sv-reassign-error"), null);
    $("sv-view-title").textContent = "Загрузка…";
    $("sv-view-sub").textContent = "";
    await loadView();
  }

  async function loadView() {
    var id = state.selected;
    if (!id) return;
    var seq = ++state.viewSeq;
    var data;
    try {
      data = await api("GET", "/conversations/" + id);
    } catch (e) {
      if (seq !== state.viewSeq) return;
      $("sv-view-title").textContent = "Диалог недоступен";
      $("sv-view-sub").textContent = D.errorText(e);
      $("sv-reassign").hidden = true;
      return;
    }
    if (seq !== state.viewSeq || id !== state.selected || !data) return;
    var conv = data.conversation || {};
    if (conv.channel_id && conv.channel_type) channelTypes[conv.channel_id] = conv.channel_type;
    $("sv-view-title").textContent = conv.contact_name || "Клиент #" + conv.contact_id;
    var bits = [D.channelLabel(conv.channel_type, conv.channel_id), D.CONV_STATUS_LABELS[conv.status] || conv.status];
    if (conv.assignee && conv.assignee.name) bits.push("ведёт: " + conv.assignee.name);
    if (conv.group) bits.push("группа: " + conv.group);
    if (conv.resolution) bits.push("итог: " + conv.resolution);
    $("sv-view-sub").textContent = bits.filter(Boolean).join(" · ") + " · только просмотр";
    log.update(Array.isArray(data.messages) ? data.messages : [], { channelTypes: channelTypes, mainChannel: conv.channel_id });
    $("sv-reassign").hidden = conv.status === "closed";
  }

  var refresh = D.serial(loadAll);
  var refreshLater = D.debounce(refresh, 150);
  var refreshView = D.serial(loadView);
  var refreshViewLater = D.debounce(refreshView, 100);

  $("sv-reassign").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var userId = Number($("sv-assignee").value);
    if (!state.selected || !userId) return;
    var button = ev.target.querySelector("button[type=submit]");
    button.disabled = true;
    D.setError($("sv-reassign-error"), null);
    try {
      await api("POST", "/conversations/" + state.selected + "/assign", { user_id: userId });
      refresh();
      refreshView();
    } catch (e) {
      D.setError($("sv-reassign-error"), D.errorText(e));
    } finally {
      button.disabled = false;
    }
  });

  var socket = new D.LiveSocket({
    onState: D.onConnectionState,
    onOpen: function () {
      refresh();
      refreshView();
    },
    onEvent: function (type, data) {
      var convId = typeof data.conversation_id === "number" ? data.conversation_id : null;
      if (type === "operator.status" || type.indexOf("conversation.") === 0) refreshLater();
      if (type === "message.received" || type === "message.sent") refreshLater();
      if (convId !== null && convId === state.selected) refreshViewLater();
    }
  });

  refresh();
  // A link from the reports page (?conversation=ID) opens that conversation, closed
  // ones included: they are not in the open list, but the view shows any of them.
  var linked = Number(new URLSearchParams(location.search).get("conversation"));
  if (Number.isInteger(linked) && linked > 0) select(linked);
  setInterval(tick, 1000);
  setInterval(refresh, 60000);
  socket.connect();
})();
