/*!
 * Abonent reports page: the statistics of a period for supervisors.
 *
 * Every figure comes from /api/workspace/v1/stats (the same Stats object as the
 * exports and `abonent stats summary`), and the page computes none of its own (only
 * the sums of a table's column), so it can never disagree with an export. The period
 * and the filters live in the address, so a view can be reloaded or sent to a colleague.
 * Charts are drawn by the vendored Chart.js.
 * As in operator.js, data reaches the page only as text (textContent / createElement).
 */
(function () {
  "use strict";

  var D = window.AbonentDesk;
  if (!D || !document.body.classList.contains("page-reports")) return;

  var api = D.api;
  var el = D.el;
  var $ = D.$;
  var ChartJs = window.Chart || null;

  var baseMeta = document.querySelector('meta[name="api-base"]');
  var API_BASE = (baseMeta && baseMeta.getAttribute("content")) || "/api/workspace/v1";

  var PERIODS = ["today", "yesterday", "7d", "30d", "90d"];
  var DEFAULT_PERIOD = "7d";
  var CHANNEL_ORDER = ["webchat", "telegram", "whatsapp", "viber", "vk", "max", "other"];
  var CHANNEL_LABELS = {
    webchat: "Веб-чат",
    telegram: "Telegram",
    whatsapp: "WhatsApp",
    viber: "Viber",
    vk: "ВКонтакте",
    max: "MAX",
    other: "Другие"
  };
  var CHANNEL_COLORS = {
    webchat: "#0b5fc5",
    telegram: "#2aa3df",
    whatsapp: "#25a35a",
    viber: "#7b519d",
    vk: "#4a76a8",
    max: "#e0672b",
    other: "#8a94a6"
  };
  var COLOR = { accent: "#0b5fc5", soft: "#8fb5e8", ok: "#1b7f3b", warn: "#d08a1c", muted: "#8a94a6" };
  var EVENT_LABELS = {
    "operator.signed_in": "Вход",
    "operator.signed_out": "Выход",
    "operator.status": "Смена статуса",
    "conversation.assigned": "Получил диалог",
    "conversation.transferred": "Перевёл диалог",
    "conversation.returned_to_bot": "Вернул диалог боту",
    "conversation.closed": "Закрыл диалог"
  };
  var HOW_LABELS = { auto: "автоматически", take: "взял сам", assign: "назначил старший оператор" };
  var FLOW_LABELS = {
    readings: "Сценарий «Показания»",
    balance: "Сценарий «Баланс»",
    appeal: "Сценарий «Обращение»",
    operator: "Вызов оператора"
  };
  var EXPORT_TITLES = {
    daily: "по дням",
    hourly: "по часам",
    channels: "каналы",
    topics: "темы",
    links: "ссылки",
    operators: "операторы",
    slowest: "самые долгие ответы",
    timeline: "статусы операторов",
    events: "журнал событий",
    conversations: "диалоги"
  };
  var DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
  var EVENTS_PAGE = 50;
  var DRILL_PAGE = 50;

  var state = {
    query: readQuery(location.search),
    figures: {},
    report: null,
    timeline: null,
    timelineDay: "",
    team: [],
    events: { type: "", offset: 0, total: 0, rows: [], seq: 0 },
    drill: null,
    drillSeq: 0,
    seq: 0
  };
  var charts = {};

  // ------------------------------------------------------------------ formatting

  var NUMBER = new Intl.NumberFormat("ru-RU");
  var PERCENT = new Intl.NumberFormat("ru-RU", { style: "percent", maximumFractionDigits: 1 });
  var AVERAGE = new Intl.NumberFormat("ru-RU", { minimumFractionDigits: 1, maximumFractionDigits: 2 });

  function isNum(v) {
    return typeof v === "number" && isFinite(v);
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function num(v) {
    return isNum(v) ? NUMBER.format(v) : "—";
  }

  function pct(v) {
    return isNum(v) ? PERCENT.format(v) : "—";
  }

  function avg(v) {
    return isNum(v) ? AVERAGE.format(v) : "—";
  }

  /** Seconds in Russian words: «45 с», «1 мин 15 с», «2 ч 05 мин». */
  function duration(v) {
    if (!isNum(v)) return "—";
    var s = Math.max(0, Math.round(v));
    if (s < 60) return s + " с";
    if (s < 3600) {
      var rest = s % 60;
      return Math.floor(s / 60) + " мин" + (rest ? " " + rest + " с" : "");
    }
    return Math.floor(s / 3600) + " ч " + pad(Math.floor((s % 3600) / 60)) + " мин";
  }

  /** "2026-12-03" → "03.12.2026". */
  function dayText(iso) {
    if (typeof iso !== "string" || iso.length < 10) return "—";
    return iso.slice(8, 10) + "." + iso.slice(5, 7) + "." + iso.slice(0, 4);
  }

  /** An ISO time the server already gave in the company's zone: shown as it is, so a
   * supervisor in another zone reads the company's clock, as in the exports. */
  function timeText(iso) {
    if (typeof iso !== "string" || iso.length < 16) return "—";
    return dayText(iso) + " " + iso.slice(11, 16);
  }

  function hourText(h) {
    var minutes = Math.round(h * 60);
    return pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
  }

  function channelText(kind) {
    return CHANNEL_LABELS[kind] || kind || "—";
  }

  function byChannelText(map) {
    var parts = orderedChannels(Object.keys(map || {})).map(function (kind) {
      return channelText(kind) + " " + num(map[kind]);
    });
    return parts.join(" · ");
  }

  function orderedChannels(kinds) {
    return kinds.slice().sort(function (a, b) {
      var x = CHANNEL_ORDER.indexOf(a);
      var y = CHANNEL_ORDER.indexOf(b);
      return (x < 0 ? 99 : x) - (y < 0 ? 99 : y) || String(a).localeCompare(String(b));
    });
  }

  // ------------------------------------------------------------------ the address

  function readQuery(search) {
    var p = new URLSearchParams(search);
    var q = { period: "", from: "", to: "", channel: "", operator: "", group: "" };
    var from = p.get("from") || "";
    var to = p.get("to") || "";
    if (DAY_RE.test(from) && DAY_RE.test(to)) {
      q.from = from;
      q.to = to;
    } else {
      q.period = PERIODS.indexOf(p.get("period")) >= 0 ? p.get("period") : DEFAULT_PERIOD;
    }
    var channel = p.get("channel") || "";
    if (CHANNEL_LABELS[channel]) q.channel = channel;
    var operator = p.get("operator") || "";
    if (/^[1-9]\d{0,17}$/.test(operator)) q.operator = operator;
    q.group = (p.get("group") || "").slice(0, 64);
    return q;
  }

  /** The period and filters as the stats API (and the page's address) take them. */
  function params(q) {
    var p = new URLSearchParams();
    if (q.from && q.to) {
      p.set("from", q.from);
      p.set("to", q.to);
    } else {
      p.set("period", q.period || DEFAULT_PERIOD);
    }
    if (q.channel) p.set("channel", q.channel);
    if (q.operator) p.set("operator", q.operator);
    if (q.group) p.set("group", q.group);
    return p;
  }

  function apply(q) {
    state.query = q;
    var target = location.pathname + "?" + params(q).toString();
    if (target !== location.pathname + location.search) history.pushState(null, "", target);
    syncControls();
    load();
  }

  /** A new query: the given period with the filters as the controls show them. */
  function withFilters(base) {
    base.channel = $("rp-channel").value;
    base.operator = $("rp-operator").value;
    base.group = $("rp-group").value;
    return base;
  }

  // ------------------------------------------------------------------ controls

  function syncControls() {
    var q = state.query;
    Array.prototype.forEach.call(document.querySelectorAll(".rp-period"), function (b) {
      b.setAttribute("aria-pressed", !q.from && b.getAttribute("data-period") === q.period ? "true" : "false");
    });
    if (q.from) {
      $("rp-from").value = q.from;
      $("rp-to").value = q.to;
    }
    document.querySelector(".rp-custom").classList.toggle("rp-active", !!q.from);
    $("rp-channel").value = q.channel;
    ensureOption($("rp-operator"), q.operator, "#" + q.operator);
    $("rp-operator").value = q.operator;
    ensureOption($("rp-group"), q.group, q.group);
    $("rp-group").value = q.group;
  }

  /** A shared address may name an operator or a group this list lacks (deactivated):
   * the filter still shows what it is set to. */
  function ensureOption(select, value, label) {
    if (!value) return;
    var found = Array.prototype.some.call(select.options, function (o) {
      return o.value === value;
    });
    if (!found) select.appendChild(el("option", { text: label, attrs: { value: value } }));
  }

  function setupControls() {
    Array.prototype.forEach.call(document.querySelectorAll(".rp-period"), function (b) {
      b.addEventListener("click", function () {
        apply(withFilters({ period: b.getAttribute("data-period"), from: "", to: "" }));
      });
    });
    $("rp-controls").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var from = $("rp-from").value;
      var to = $("rp-to").value;
      if (!DAY_RE.test(from) || !DAY_RE.test(to)) {
        D.setError($("rp-error"), "Укажите обе даты периода.");
        return;
      }
      if (from > to) {
        D.setError($("rp-error"), "Период заканчивается раньше, чем начинается.");
        return;
      }
      apply(withFilters({ period: "", from: from, to: to }));
    });
    ["rp-channel", "rp-operator", "rp-group"].forEach(function (id) {
      $(id).addEventListener("change", function () {
        apply(withFilters({ period: state.query.period, from: state.query.from, to: state.query.to }));
      });
    });
    window.addEventListener("popstate", function () {
      state.query = readQuery(location.search);
      syncControls();
      load();
    });

    var types = $("rp-events-type");
    Object.keys(EVENT_LABELS).forEach(function (type) {
      types.appendChild(el("option", { text: EVENT_LABELS[type], attrs: { value: type } }));
    });
    types.addEventListener("change", function () {
      state.events.type = types.value;
      state.events.offset = 0;
      exportLinks();
      loadEvents();
    });
    $("rp-events-newer").addEventListener("click", function () {
      state.events.offset = Math.max(0, state.events.offset - EVENTS_PAGE);
      loadEvents();
    });
    $("rp-events-older").addEventListener("click", function () {
      state.events.offset += EVENTS_PAGE;
      loadEvents();
    });
    $("rp-timeline-day").addEventListener("change", function () {
      state.timelineDay = $("rp-timeline-day").value;
      renderTimeline();
    });
    $("rp-drill-close").addEventListener("click", closeDrill);
    $("rp-drill-more").addEventListener("click", function () {
      loadDrill(false);
    });
    setupTips();
  }

  async function loadTeam() {
    var data;
    try {
      data = await api("GET", "/operators");
    } catch (e) {
      return; // the filters still work from the address; the lists stay short
    }
    var team = (data && Array.isArray(data.operators) ? data.operators : []).slice();
    team.sort(function (a, b) {
      return String(a.name).localeCompare(String(b.name));
    });
    state.team = team;
    var ops = $("rp-operator");
    var groups = $("rp-group");
    var seen = {};
    team.forEach(function (u) {
      ops.appendChild(el("option", { text: u.name + " (" + u.login + ")", attrs: { value: String(u.id) } }));
      (u.groups || []).forEach(function (g) {
        seen[g] = true;
      });
    });
    Object.keys(seen)
      .sort()
      .forEach(function (g) {
        groups.appendChild(el("option", { text: g, attrs: { value: g } }));
      });
    syncControls();
  }

  function userName(id) {
    for (var i = 0; i < state.team.length; i++) {
      if (state.team[i].id === id) return state.team[i].name;
    }
    return "#" + id;
  }

  function nameOfLogin(login) {
    for (var i = 0; i < state.team.length; i++) {
      if (state.team[i].login === login) return state.team[i].name;
    }
    return login || "—";
  }

  // ------------------------------------------------------------------ definitions

  async function loadDefinitions() {
    var data = await api("GET", "/stats/definitions");
    state.figures = (data && data.figures) || {};
    var box = $("rp-definitions");
    D.clear(box);
    Object.keys(state.figures).forEach(function (key) {
      box.appendChild(el("span", { text: state.figures[key].definition, attrs: { id: "rp-def-" + key } }));
    });
  }

  /** A figure's label: focusable, described by its definition (read by screen readers
   * through aria-describedby, shown to everyone in the tooltip on hover and focus). */
  function term(key, text) {
    var figure = state.figures[key];
    var node = el("span", { className: "term", text: text || (figure && figure.label) || key });
    if (figure) {
      node.setAttribute("tabindex", "0");
      node.setAttribute("data-figure", key);
      node.setAttribute("aria-describedby", "rp-def-" + key);
    }
    return node;
  }

  function setupTips() {
    var tip = $("rp-tip");
    var current = null;

    function show(node) {
      var figure = state.figures[node.getAttribute("data-figure")];
      if (!figure) return;
      current = node;
      tip.textContent = figure.definition;
      tip.hidden = false;
      var r = node.getBoundingClientRect();
      var width = tip.offsetWidth;
      var left = Math.min(r.left, document.documentElement.clientWidth - width - 8);
      tip.style.left = Math.max(8, left) + window.scrollX + "px";
      tip.style.top = r.bottom + window.scrollY + 6 + "px";
    }

    function hide(node) {
      if (node && node !== current) return;
      current = null;
      tip.hidden = true;
    }

    function termOf(target) {
      return target && target.closest ? target.closest(".term[data-figure]") : null;
    }

    document.addEventListener("mouseover", function (ev) {
      var node = termOf(ev.target);
      if (node) show(node);
    });
    document.addEventListener("mouseout", function (ev) {
      var node = termOf(ev.target);
      if (node && !node.contains(ev.relatedTarget) && document.activeElement !== node) hide(node);
    });
    document.addEventListener("focusin", function (ev) {
      var node = termOf(ev.target);
      if (node) show(node);
    });
    document.addEventListener("focusout", function (ev) {
      var node = termOf(ev.target);
      if (node) hide(node);
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") hide(null);
    });
    window.addEventListener("scroll", function () {
      if (current && document.activeElement !== current) hide(null);
    });
  }

  // ------------------------------------------------------------------ building blocks

  function card(id, key, value, sub, label) {
    return el("div", { className: "card", attrs: { "data-card": id } }, [
      term(key, label),
      el("span", { className: "card-value", text: value }),
      sub ? el("span", { className: "card-sub", text: sub }) : null
    ]);
  }

  function fillCards(id, cards) {
    var box = $(id);
    D.clear(box);
    cards.forEach(function (c) {
      box.appendChild(c);
    });
  }

  /** Header cell: text, or a figure's label with its definition. */
  function th(content, attrs, className) {
    var node = el("th", { className: className || "", attrs: Object.assign({ scope: "col" }, attrs || {}) });
    node.appendChild(typeof content === "string" ? document.createTextNode(content) : content);
    return node;
  }

  /** The header of a column of numbers (aligned with them, on the right). */
  function thn(content, attrs) {
    return th(content, attrs, "num");
  }

  function td(content, col, className) {
    var node = el("td", { className: className || "", attrs: col ? { "data-col": col } : null });
    if (content === null || content === undefined) content = "—";
    node.appendChild(typeof content === "string" ? document.createTextNode(content) : content);
    return node;
  }

  function numTd(text, col) {
    return td(text, col, "num");
  }

  function fillTable(table, headRows, bodyRows, emptyText) {
    D.clear(table);
    var thead = el("thead");
    var width = 0;
    headRows.forEach(function (cells, i) {
      var row = el("tr");
      var span = 0;
      cells.forEach(function (c) {
        row.appendChild(c);
        span += Number(c.getAttribute("colspan") || 1);
      });
      if (i === 0) width = span;
      thead.appendChild(row);
    });
    table.appendChild(thead);
    var tbody = el("tbody");
    if (!bodyRows.length) {
      var empty = el("td", {
        className: "muted",
        text: emptyText || "Нет данных за период",
        attrs: { colspan: width }
      });
      tbody.appendChild(el("tr", { className: "rp-empty" }, [empty]));
    }
    bodyRows.forEach(function (r) {
      tbody.appendChild(r);
    });
    table.appendChild(tbody);
  }

  function conversationLink(id) {
    return el("a", {
      className: "rp-conv",
      text: "№ " + id,
      attrs: { href: "/operator/supervisor?conversation=" + encodeURIComponent(id), "data-conversation": id }
    });
  }

  function exportLinks() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-export]"), function (box) {
      D.clear(box);
      // The drill-down's export holds the conversations listed, the log's its event type.
      var p = params(state.query);
      if (box.hasAttribute("data-export-drill") && state.drill) {
        Object.keys(state.drill.filter).forEach(function (k) {
          p.set(k, state.drill.filter[k]);
        });
      }
      if (box.hasAttribute("data-export-events") && state.events.type) {
        p.append("type", state.events.type);
      }
      var qs = p.toString();
      var kinds = box.getAttribute("data-export").split(/\s+/);
      kinds.forEach(function (kind, i) {
        var title = EXPORT_TITLES[kind] || kind;
        var group = el("span", { className: "rp-export", attrs: { "data-kind": kind } });
        if (kinds.length > 1 || box.getAttribute("data-export-note")) {
          var note = box.getAttribute("data-export-note") || title;
          group.appendChild(el("span", { className: "muted", text: note + ":" }));
        }
        ["csv", "xlsx"].forEach(function (fmt) {
          group.appendChild(
            el("a", {
              text: fmt.toUpperCase(),
              attrs: {
                href: API_BASE + "/stats/export/" + kind + "." + fmt + "?" + qs,
                download: "",
                "data-format": fmt,
                "aria-label": "Скачать " + fmt.toUpperCase() + ": " + title
              }
            })
          );
        });
        if (i > 0) box.appendChild(document.createTextNode(" "));
        box.appendChild(group);
      });
    });
  }

  // ------------------------------------------------------------------ charts

  if (ChartJs) {
    // Redrawn on every change of period or filter: no animation to sit through.
    ChartJs.defaults.animation = false;
    ChartJs.defaults.maintainAspectRatio = false;
    ChartJs.defaults.locale = "ru-RU";
    ChartJs.defaults.color = "#475467";
    ChartJs.defaults.font.family = getComputedStyle(document.body).fontFamily;
    ChartJs.defaults.plugins.legend.labels.boxWidth = 12;
  }

  function draw(id, config) {
    if (!ChartJs) return null;
    if (charts[id]) charts[id].destroy();
    charts[id] = new ChartJs($(id), config);
    return charts[id];
  }

  function intTicks() {
    return { beginAtZero: true, ticks: { precision: 0 } };
  }

  // ------------------------------------------------------------------ loading

  function setBusy(busy) {
    var main = document.querySelector("main");
    main.setAttribute("aria-busy", busy ? "true" : "false");
    if (busy) main.removeAttribute("data-state");
  }

  function apiError(e) {
    if (e && e.code === "bad_period") return "Период задан неверно: проверьте даты.";
    if (e && e.code === "bad_filter") return "Фильтр задан неверно.";
    return D.errorText(e);
  }

  async function load() {
    var seq = ++state.seq;
    var qs = params(state.query).toString();
    setBusy(true);
    D.setError($("rp-error"), null);
    state.events.offset = 0;
    state.events.seq++; // a page of the log still on its way belongs to the old query
    try {
      var results = await Promise.all([
        api("GET", "/stats/report?" + qs),
        api("GET", "/stats/timeline?" + qs),
        fetchEvents()
      ]);
      if (seq !== state.seq) return;
      state.report = results[0];
      state.timeline = results[1];
      render();
      renderEvents(results[2]);
      if (state.drill) await loadDrill(true);
      if (seq !== state.seq) return;
      document.querySelector("main").setAttribute("data-state", "ready");
    } catch (e) {
      if (seq !== state.seq) return;
      $("rp-period-text").textContent = "Нет данных.";
      D.setError($("rp-error"), apiError(e));
      document.querySelector("main").setAttribute("data-state", "error");
    } finally {
      if (seq === state.seq) setBusy(false);
    }
  }

  function render() {
    var r = state.report;
    var period = r.period || {};
    var text = "Период: " + dayText(period.from) + (period.to !== period.from ? " — " + dayText(period.to) : "");
    var filters = [];
    if (state.query.channel) filters.push("канал: " + channelText(state.query.channel));
    if (state.query.operator) filters.push("оператор: " + userName(Number(state.query.operator)));
    if (state.query.group) filters.push("группа: " + state.query.group);
    if (filters.length) text += " · " + filters.join(", ");
    $("rp-period-text").textContent = text + " · время: " + (period.timezone || "");
    if (!state.query.from) {
      $("rp-from").value = period.from || "";
      $("rp-to").value = period.to || "";
    }
    exportLinks();
    renderTraffic(r.traffic);
    renderBot(r.bot);
    renderOperators(r.operators);
    renderTimeline();
    renderQueue(r.queue);
    renderCsat(r.csat);
  }

  // ------------------------------------------------------------------ traffic

  function renderTraffic(t) {
    var messages = t.messages || {};
    var sums = { customer: 0, bot: 0, operator: 0 };
    Object.keys(messages).forEach(function (kind) {
      Object.keys(sums).forEach(function (author) {
        sums[author] += messages[kind][author] || 0;
      });
    });
    var busiestDay = t.busiest_day;
    var busiestHour = t.busiest_hour;
    fillCards("rp-traffic-cards", [
      card(
        "messages",
        "messages",
        num(sums.customer + sums.bot + sums.operator),
        "клиенты " + num(sums.customer) + " · бот " + num(sums.bot) + " · операторы " + num(sums.operator)
      ),
      card("conversations", "conversations", num(t.conversations.total), byChannelText(t.conversations.by_channel)),
      card("unique_customers", "unique_customers", num(t.customers.unique)),
      card(
        "returning_customers",
        "returning_customers",
        num(t.customers.returning),
        pct(t.customers.returning_share) + " уникальных"
      ),
      card(
        "busiest_day",
        "busiest_day",
        busiestDay ? dayText(busiestDay.day) : "—",
        busiestDay ? num(busiestDay.messages) + " сообщ. клиентов" : ""
      ),
      card(
        "busiest_hour",
        "busiest_hour",
        busiestHour ? pad(busiestHour.hour) + ":00–" + pad((busiestHour.hour + 1) % 24) + ":00" : "—",
        busiestHour ? num(busiestHour.messages) + " сообщ. клиентов" : ""
      ),
      card("night_share", "night_share", pct(t.night.share), num(t.night.messages) + " сообщ. ночью")
    ]);

    var kinds = orderedChannels(Object.keys(messages));
    var rows = kinds.map(function (kind) {
      var m = messages[kind];
      return el("tr", { attrs: { "data-channel": kind } }, [
        td(channelText(kind), "channel"),
        numTd(num(m.customer || 0), "customer"),
        numTd(num(m.bot || 0), "bot"),
        numTd(num(m.operator || 0), "operator"),
        numTd(num(t.conversations.by_channel[kind] || 0), "conversations")
      ]);
    });
    if (rows.length > 1) {
      rows.push(
        el("tr", { className: "rp-total" }, [
          td("Всего"),
          numTd(num(sums.customer)),
          numTd(num(sums.bot)),
          numTd(num(sums.operator)),
          numTd(num(t.conversations.total))
        ])
      );
    }
    fillTable(
      $("rp-channels"),
      [
        [
          th("Канал"),
          thn(term("messages", "Сообщений клиентов")),
          thn(term("messages", "Бота")),
          thn(term("messages", "Операторов")),
          thn(term("conversations"))
        ]
      ],
      rows
    );

    var series = t.series || { points: [], granularity: "day" };
    var points = series.points || [];
    var oneDay = points.length && points[0].at.slice(0, 10) === points[points.length - 1].at.slice(0, 10);
    var labels = points.map(function (p) {
      var hour = p.at.slice(11, 16);
      if (series.granularity === "hour") return oneDay ? hour : dayText(p.at).slice(0, 5) + " " + hour;
      return dayText(p.at).slice(0, 5);
    });
    var seriesKinds = orderedChannels(
      Object.keys(points[0] || {}).filter(function (k) {
        return k !== "at";
      })
    );
    draw("rp-chart-series", {
      type: "bar",
      data: {
        labels: labels,
        datasets: seriesKinds.map(function (kind) {
          return {
            label: channelText(kind),
            data: points.map(function (p) {
              return p[kind] || 0;
            }),
            backgroundColor: CHANNEL_COLORS[kind] || COLOR.muted
          };
        })
      },
      options: {
        scales: { x: { stacked: true }, y: Object.assign({ stacked: true }, intTicks()) },
        plugins: { legend: { display: seriesKinds.length > 0, position: "bottom" } }
      }
    });

    var hours = t.by_hour_of_day || [];
    draw("rp-chart-hours", {
      type: "bar",
      data: {
        labels: hours.map(function (_, h) {
          return pad(h);
        }),
        datasets: [{ label: "Сообщений клиентов", data: hours, backgroundColor: COLOR.accent }]
      },
      options: {
        scales: { y: intTicks() },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: function (items) {
                var h = items[0].dataIndex;
                return pad(h) + ":00–" + pad((h + 1) % 24) + ":00";
              }
            }
          }
        }
      }
    });
  }

  // ------------------------------------------------------------------ the bot

  function topicTitle(intent) {
    var topics = (state.report && state.report.bot.topics) || [];
    for (var i = 0; i < topics.length; i++) {
      if (topics[i].intent === intent) return topics[i].title || intent;
    }
    return intent;
  }

  function renderBot(b) {
    var conv = b.conversations;
    fillCards("rp-bot-cards", [
      card("bot_only", "bot_only", num(conv.bot_only), pct(conv.bot_only_share) + " диалогов"),
      card(
        "to_operator",
        "to_operator",
        num(conv.to_operator),
        "из " + num(conv.total) + " диалогов"
      ),
      card("free_text", "free_text", num(b.free_text)),
      card("recognised", "recognised", num(b.recognised)),
      card("fallback", "fallback", num(b.fallback)),
      card("recognition_rate", "recognition_rate", pct(b.recognition_rate))
    ]);
    [
      ["bot_only", "false", "Диалоги, решённые ботом"],
      ["to_operator", "true", "Диалоги, переданные операторам"]
    ].forEach(function (spec) {
      var node = document.querySelector("#rp-bot-cards [data-card=" + spec[0] + "]");
      node.appendChild(
        el("button", {
          className: "rp-link-button",
          text: "Показать диалоги",
          attrs: { type: "button" },
          onClick: function () {
            openDrill({ handed_over: spec[1] }, spec[2]);
          }
        })
      );
    });

    var topics = b.topics || [];
    fillTable(
      $("rp-topics"),
      [[th(term("topics", "Тема")), thn(term("topics", "Количество")), thn(term("topics", "Доля"))]],
      topics.map(function (t) {
        var open = el("button", {
          className: "rp-link-button rp-topic",
          text: t.title || t.intent,
          attrs: { type: "button", "data-intent": t.intent, "aria-label": "Диалоги по теме: " + (t.title || t.intent) },
          onClick: function () {
            openDrill({ topic: t.intent }, "Диалоги по теме «" + (t.title || t.intent) + "»");
          }
        });
        return el("tr", { attrs: { "data-intent": t.intent } }, [
          td(el("span", null, [open, el("span", { className: "muted small", text: " " + t.intent })]), "title"),
          numTd(num(t.count), "count"),
          numTd(pct(t.share), "share")
        ]);
      }),
      "Распознанных вопросов за период нет"
    );
    var box = $("rp-chart-topics").parentNode;
    box.style.height = Math.max(180, 30 * topics.length + 50) + "px";
    draw("rp-chart-topics", {
      type: "bar",
      data: {
        labels: topics.map(function (t) {
          return t.title || t.intent;
        }),
        datasets: [
          {
            label: "Вопросов",
            data: topics.map(function (t) {
              return t.count;
            }),
            backgroundColor: COLOR.accent,
            maxBarThickness: 26
          }
        ]
      },
      options: {
        indexAxis: "y",
        scales: { x: intTicks() },
        plugins: { legend: { display: false } },
        onClick: function (ev, elements) {
          if (!elements.length) return;
          var t = topics[elements[0].index];
          if (t) openDrill({ topic: t.intent }, "Диалоги по теме «" + (t.title || t.intent) + "»");
        },
        onHover: function (ev, elements) {
          var canvas = ev.native && ev.native.target;
          if (canvas) canvas.style.cursor = elements.length ? "pointer" : "default";
        }
      }
    });

    var flows = b.flows || {};
    var readings = b.readings || {};
    var links = b.links || {};
    var flowCards = ["readings", "balance", "appeal"].map(function (name) {
      var f = flows[name] || {};
      return card(
        "flow_" + name,
        "flows",
        num(f.completed),
        "доведено до конца; начато " + num(f.started),
        FLOW_LABELS[name]
      );
    });
    var operatorFlow = flows.operator || {};
    fillCards(
      "rp-flow-cards",
      flowCards.concat([
        card("flow_operator", "flows", num(operatorFlow.started), "раз начат", FLOW_LABELS.operator),
        card("readings", "readings", num(readings.submitted), byChannelText(readings.by_channel)),
        card(
          "readings_messengers",
          "readings",
          pct(readings.messengers_share),
          "показаний — не через веб-чат",
          "Доля мессенджеров"
        ),
        card("links_sent", "links_sent", num(links.sent)),
        card("links_clicked", "links_clicked", num(links.clicked), "кликов всего " + num(links.clicks)),
        card("click_through", "click_through", pct(links.click_through)),
        card("profanity", "profanity", num(b.profanity.count), pct(b.profanity.share) + " вопросов своими словами")
      ])
    );

    fillTable(
      $("rp-links"),
      [
        [
          th("Ссылка"),
          thn(term("links_sent", "Отправлено")),
          thn(term("links_clicked", "Перешли")),
          thn("Кликов всего"),
          thn(term("click_through"))
        ]
      ],
      (links.top || []).map(function (l) {
        var href = safeHttp(l.url);
        var link = href
          ? el("a", {
              className: "rp-url",
              text: l.url,
              attrs: { href: href, target: "_blank", rel: "noopener noreferrer" }
            })
          : el("span", { className: "rp-url", text: l.url });
        return el("tr", null, [
          td(link, "url"),
          numTd(num(l.sent), "sent"),
          numTd(num(l.clicked), "clicked"),
          numTd(num(l.clicks), "clicks"),
          numTd(pct(l.click_through), "click_through")
        ]);
      }),
      "Ссылок за период не отправлялось"
    );
  }

  function safeHttp(url) {
    try {
      var u = new URL(String(url));
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  // ------------------------------------------------------------------ drill-down

  function openDrill(filter, title) {
    state.drill = { filter: filter, title: title, rows: [], total: 0 };
    exportLinks();
    $("rp-drill").hidden = false;
    $("rp-drill-h").textContent = title;
    loadDrill(true).then(function () {
      $("rp-drill").scrollIntoView({ block: "nearest" });
      $("rp-drill-h").focus({ preventScroll: true });
    });
  }

  function closeDrill() {
    state.drill = null;
    state.drillSeq++;
    $("rp-drill").hidden = true;
  }

  async function loadDrill(reset) {
    var d = state.drill;
    if (!d) return;
    if (reset) d.rows = [];
    var p = params(state.query);
    Object.keys(d.filter).forEach(function (k) {
      p.set(k, d.filter[k]);
    });
    p.set("limit", String(DRILL_PAGE));
    p.set("offset", String(d.rows.length));
    var seq = ++state.drillSeq;
    $("rp-drill-status").textContent = "Загрузка…";
    var data;
    try {
      data = await api("GET", "/stats/conversations?" + p.toString());
    } catch (e) {
      if (seq === state.drillSeq) $("rp-drill-status").textContent = apiError(e);
      return;
    }
    if (seq !== state.drillSeq || d !== state.drill) return;
    d.rows = d.rows.concat(data.conversations || []);
    d.total = data.total || 0;
    renderDrill();
  }

  function renderDrill() {
    var d = state.drill;
    $("rp-drill-status").textContent = d.total
      ? "Показано " + num(d.rows.length) + " из " + num(d.total)
      : "Диалогов нет";
    $("rp-drill-more").hidden = d.rows.length >= d.total;
    fillTable(
      $("rp-drill-table"),
      [
        [
          th("Диалог"),
          th("Начало"),
          th("Канал"),
          thn(term("messages", "Сообщений: клиент / бот / оператор")),
          th(term("to_operator", "Оператору")),
          th("Оператор"),
          thn(term("first_response")),
          th(term("topics")),
          thn(term("csat", "Оценка"))
        ]
      ],
      d.rows.map(function (c) {
        return el("tr", { attrs: { "data-conversation": c.conversation_id } }, [
          td(conversationLink(c.conversation_id), "conversation_id"),
          td(timeText(c.started_at), "started_at"),
          td(channelText(c.channel), "channel"),
          numTd(num(c.customer_messages) + " / " + num(c.bot_messages) + " / " + num(c.operator_messages), "messages"),
          td(c.handed_over ? "да" : "нет", "handed_over"),
          td(c.operator ? nameOfLogin(c.operator) : "—", "operator"),
          numTd(duration(c.first_response_s), "first_response_s"),
          td((c.topics || []).map(topicTitle).join(", ") || "—", "topics"),
          numTd(isNum(c.csat) ? String(c.csat) : "—", "csat")
        ]);
      }),
      "Диалогов нет"
    );
  }

  // ------------------------------------------------------------------ operators

  function triple(p, col) {
    p = p || {};
    return ["median", "p90", "max"].map(function (k) {
      return numTd(duration(p[k]), col + "_" + k);
    });
  }

  function renderOperators(o) {
    var totals = o.totals || {};
    var first = totals.first_response_s || {};
    var firstWork = totals.first_response_work_s || {};
    var later = totals.response_s || {};
    fillCards("rp-operator-cards", [
      card("handled", "handled", num(totals.conversations)),
      card("replies", "replies", num(totals.replies)),
      card("transfers", "transfers", num(totals.transfers)),
      card("first_response", "first_response", duration(first.median), "медиана · p90 " + duration(first.p90)),
      card(
        "first_response_work",
        "in_hours",
        duration(firstWork.median),
        "медиана первого ответа · p90 " + duration(firstWork.p90),
        "Первый ответ в рабочее время"
      ),
      card("response_delay", "response_delay", duration(later.median), "медиана · p90 " + duration(later.p90)),
      card("unanswered", "unanswered", num(totals.unanswered))
    ]);

    var rows = (o.operators || []).map(function (u) {
      var c = u.csat || {};
      return el("tr", { attrs: { "data-login": u.login, "data-user-id": u.user_id } }, [
        el("th", { attrs: { scope: "row", "data-col": "name" } }, [
          el("span", { text: u.name }),
          el("span", { className: "muted small", text: " " + u.login })
        ]),
        numTd(num(u.conversations), "conversations"),
        numTd(num(u.replies), "replies"),
        numTd(num(u.transfers), "transfers"),
        numTd(duration(u.handle_s), "handle_s")
      ]
        .concat(triple(u.first_response_s, "first"))
        .concat(triple(u.first_response_work_s, "first_work"))
        .concat(triple(u.response_s, "next"))
        .concat([
          numTd(duration(u.online_s), "online_s"),
          numTd(duration(u.break_s), "break_s"),
          numTd(avg(c.average) + " (" + num(c.answered) + " из " + num(c.asked) + ")", "csat")
        ]));
    });
    if (rows.length > 1) {
      var online = 0;
      var pause = 0;
      (o.operators || []).forEach(function (u) {
        online += u.online_s || 0;
        pause += u.break_s || 0;
      });
      var overall = (state.report && state.report.csat) || {};
      rows.push(
        el("tr", { className: "rp-total", attrs: { "data-login": "" } }, [
          el("th", { text: "Все операторы", attrs: { scope: "row" } }),
          numTd(num(totals.conversations), "conversations"),
          numTd(num(totals.replies), "replies"),
          numTd(num(totals.transfers), "transfers"),
          numTd("—", "handle_s")
        ]
          .concat(triple(totals.first_response_s, "first"))
          .concat(triple(totals.first_response_work_s, "first_work"))
          .concat(triple(totals.response_s, "next"))
          .concat([
            numTd(duration(online), "online_s"),
            numTd(duration(pause), "break_s"),
            numTd(avg(overall.average), "csat")
          ]))
      );
    }
    var sub = function (key) {
      return [thn("медиана"), thn("p90"), thn("макс.")].map(function (node) {
        node.setAttribute("data-group", key);
        return node;
      });
    };
    fillTable(
      $("rp-operator-table"),
      [
        [
          th("Оператор", { rowspan: 2 }),
          thn(term("handled"), { rowspan: 2 }),
          thn(term("replies"), { rowspan: 2 }),
          thn(term("transfers"), { rowspan: 2 }),
          thn(term("handle_time"), { rowspan: 2 }),
          th(term("first_response"), { colspan: 3, scope: "colgroup" }),
          th(term("in_hours", "Первый ответ в рабочее время"), { colspan: 3, scope: "colgroup" }),
          th(term("response_delay", "Следующие ответы"), { colspan: 3, scope: "colgroup" }),
          thn(term("online", "На линии"), { rowspan: 2 }),
          thn(term("online", "Перерыв"), { rowspan: 2 }),
          thn(term("csat", "Оценка"), { rowspan: 2 })
        ],
        sub("first").concat(sub("first_work")).concat(sub("next"))
      ],
      rows,
      "Операторы за период не работали"
    );

    var delays = o.delays || [];
    draw("rp-chart-delays", {
      type: "bar",
      data: {
        labels: delays.map(function (d) {
          return d.bucket;
        }),
        datasets: [
          { label: "Первый ответ", data: delays.map(function (d) { return d.first; }), backgroundColor: COLOR.accent },
          { label: "Следующие ответы", data: delays.map(function (d) { return d.next; }), backgroundColor: COLOR.soft }
        ]
      },
      options: { scales: { y: intTicks() }, plugins: { legend: { position: "bottom" } } }
    });

    fillTable(
      $("rp-slowest"),
      [
        [
          th("Диалог"),
          th("Оператор"),
          th("Канал"),
          th("Ответ"),
          th("Вопрос клиента"),
          th("Ответ оператора"),
          thn(term("response_delay")),
          thn(term("in_hours"))
        ]
      ],
      (o.slowest || []).map(function (s) {
        return el("tr", { attrs: { "data-conversation": s.conversation_id } }, [
          td(conversationLink(s.conversation_id), "conversation_id"),
          td(s.name || s.login || "#" + s.user_id, "operator"),
          td(channelText(s.channel), "channel"),
          td(s.kind === "first" ? "первый" : "следующий", "kind"),
          td(timeText(s.asked_at), "asked_at"),
          td(timeText(s.answered_at), "answered_at"),
          numTd(duration(s.seconds), "seconds"),
          numTd(duration(s.work_seconds), "work_seconds")
        ]);
      }),
      "Ответов операторов за период нет"
    );
  }

  // ------------------------------------------------------------------ status timeline

  function renderTimeline() {
    var data = state.timeline || { operators: [] };
    var ops = data.operators || [];
    var days = periodDays(data.period || (state.report && state.report.period) || {});
    var select = $("rp-timeline-day");
    if (days.indexOf(state.timelineDay) < 0) {
      // The latest day anyone worked, so the chart opens on something to see.
      state.timelineDay = days[days.length - 1] || "";
      for (var i = days.length - 1; i >= 0; i--) {
        if (ops.some(function (op) { return dayOf(op, days[i]).intervals.length; })) {
          state.timelineDay = days[i];
          break;
        }
      }
    }
    D.clear(select);
    days
      .slice()
      .reverse()
      .forEach(function (d) {
        select.appendChild(el("option", { text: dayText(d), attrs: { value: d } }));
      });
    select.value = state.timelineDay;

    var names = {};
    var labels = ops.map(function (op) {
      var label = op.name;
      if (names[label]) label += " (" + op.login + ")";
      names[label] = true;
      return label;
    });
    var online = [];
    var pause = [];
    var anyone = false;
    ops.forEach(function (op, index) {
      var day = dayOf(op, state.timelineDay);
      day.intervals.forEach(function (piece) {
        anyone = true;
        var bar = { x: [piece.from_h, piece.to_h], y: labels[index], seconds: piece.seconds };
        (piece.status === "break" ? pause : online).push(bar);
      });
    });
    $("rp-timeline-empty").hidden = anyone;
    $("rp-timeline-box").style.height = Math.max(120, 36 * ops.length + 70) + "px";
    draw("rp-chart-timeline", {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "На линии", data: online, backgroundColor: COLOR.ok, grouped: false, barPercentage: 0.7 },
          { label: "Перерыв", data: pause, backgroundColor: COLOR.warn, grouped: false, barPercentage: 0.7 }
        ]
      },
      options: {
        indexAxis: "y",
        scales: {
          x: {
            type: "linear",
            min: 0,
            max: 24,
            ticks: {
              stepSize: 2,
              callback: function (v) {
                return pad(v) + ":00";
              }
            }
          },
          y: { type: "category" }
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var raw = ctx.raw || {};
                var x = raw.x || [0, 0];
                var span = hourText(x[0]) + "–" + hourText(x[1]);
                return ctx.dataset.label + ": " + span + " (" + duration(raw.seconds) + ")";
              }
            }
          }
        }
      }
    });
  }

  function dayOf(op, day) {
    var list = op.days || [];
    for (var i = 0; i < list.length; i++) {
      if (list[i].day === day) return list[i];
    }
    return { day: day, intervals: [], online_s: 0, break_s: 0 };
  }

  function periodDays(period) {
    var out = [];
    if (!DAY_RE.test(period.from || "") || !DAY_RE.test(period.to || "")) return out;
    var d = new Date(period.from + "T00:00:00Z");
    var end = new Date(period.to + "T00:00:00Z");
    while (d <= end && out.length < 4000) {
      out.push(d.toISOString().slice(0, 10));
      d.setUTCDate(d.getUTCDate() + 1);
    }
    return out;
  }

  // ------------------------------------------------------------------ events log

  function fetchEvents() {
    var p = params(state.query);
    if (state.events.type) p.append("type", state.events.type);
    p.set("limit", String(EVENTS_PAGE));
    p.set("offset", String(state.events.offset));
    return api("GET", "/stats/events?" + p.toString());
  }

  async function loadEvents() {
    var seq = ++state.events.seq;
    $("rp-events-status").textContent = "Загрузка…";
    var data;
    try {
      data = await fetchEvents();
    } catch (e) {
      if (seq === state.events.seq) $("rp-events-status").textContent = apiError(e);
      return;
    }
    if (seq === state.events.seq) renderEvents(data);
  }

  /** What an event adds to "who did what", in words; unknown keys as they are. */
  function detailsText(e) {
    var data = Object.assign({}, e.data || {});
    var parts = [];
    function take(key) {
      var v = data[key];
      delete data[key];
      return v === null || v === undefined || v === "" ? null : v;
    }
    switch (e.type) {
      case "operator.status": {
        var previous = take("previous");
        var status = take("status");
        var was = previous ? (D.STATUS_LABELS[previous] || previous) + " → " : "";
        parts.push(was + (D.STATUS_LABELS[status] || status || ""));
        if (take("auto")) parts.push("автоматически");
        break;
      }
      case "conversation.assigned": {
        var how = take("how");
        var by = take("by");
        take("assignee_id");
        parts.push((HOW_LABELS[how] || how || "") + (how === "assign" && by ? ": " + userName(by) : ""));
        break;
      }
      case "conversation.transferred": {
        var to = take("assignee_id");
        var group = take("group");
        take("from");
        if (to) parts.push("кому: " + userName(to));
        if (group) parts.push("в группу: " + group);
        break;
      }
      case "conversation.closed": {
        var resolution = take("resolution");
        var closer = take("by");
        take("assignee_id");
        if (resolution) parts.push("итог: " + resolution);
        if (closer && closer !== e.user_id) parts.push("закрыл: " + userName(closer));
        break;
      }
      default:
        break;
    }
    Object.keys(data)
      .sort()
      .forEach(function (key) {
        var v = data[key];
        if (v === null || v === undefined || v === "") return;
        parts.push(key + ": " + (typeof v === "object" ? JSON.stringify(v) : String(v)));
      });
    return parts.filter(Boolean).join(", ");
  }

  function renderEvents(data) {
    var ev = state.events;
    ev.total = (data && data.total) || 0;
    var rows = (data && data.events) || [];
    var first = rows.length ? ev.offset + 1 : 0;
    $("rp-events-status").textContent = ev.total
      ? num(first) + "–" + num(ev.offset + rows.length) + " из " + num(ev.total)
      : "Событий нет";
    $("rp-events-newer").disabled = ev.offset <= 0;
    $("rp-events-older").disabled = ev.offset + rows.length >= ev.total;
    fillTable(
      $("rp-events"),
      [[th("Время"), th("Оператор"), th("Событие"), th("Диалог"), th("Подробности")]],
      rows.map(function (e) {
        return el("tr", { attrs: { "data-type": e.type } }, [
          td(timeText(e.at), "at"),
          td(e.login ? nameOfLogin(e.login) : "—", "operator"),
          td(EVENT_LABELS[e.type] || e.type, "type"),
          td(e.conversation_id ? conversationLink(e.conversation_id) : "—", "conversation_id"),
          td(detailsText(e) || "—", "details")
        ]);
      }),
      "Событий за период нет"
    );
  }

  // ------------------------------------------------------------------ queue, satisfaction

  function renderQueue(q) {
    var wait = q.wait_s || {};
    var left = q.left_after_s || {};
    fillCards("rp-queue-cards", [
      card("queued", "queued", num(q.queued)),
      card("abandoned", "abandoned", num(q.abandoned), "из " + num(q.queued) + " поставленных в очередь"),
      card("abandoned_share", "abandoned", pct(q.abandoned_share), "", "Доля ушедших из очереди"),
      card("queue_wait", "queue_wait", duration(wait.median), "медиана · до оператора"),
      card(
        "queue_wait_p90",
        "queue_wait",
        duration(wait.p90),
        "90-й процентиль · до оператора",
        "Ожидание в очереди, p90"
      ),
      card("queue_left", "queue_wait", duration(left.median), "медиана · до ухода", "Ушедшие ждали")
    ]);
  }

  function renderCsat(c) {
    var dist = c.distribution || {};
    fillCards("rp-csat-cards", [
      card("csat_asked", "csat", num(c.asked), "", "Опрошено"),
      card("csat_answered", "csat", num(c.answered), pct(c.answered_share) + " опрошенных", "Оценили"),
      card("csat_share", "csat", pct(c.answered_share), "", "Доля ответивших"),
      card("csat_average", "csat", avg(c.average), "из 5", "Средняя оценка")
    ]);
    var scores = ["1", "2", "3", "4", "5"];
    draw("rp-chart-csat", {
      type: "bar",
      data: {
        labels: scores,
        datasets: [
          {
            label: "Оценок",
            data: scores.map(function (s) {
              return dist[s] || 0;
            }),
            backgroundColor: ["#c62828", "#e0672b", "#d08a1c", "#7aa83b", "#1b7f3b"],
            maxBarThickness: 56
          }
        ]
      },
      options: { scales: { y: intTicks() }, plugins: { legend: { display: false } } }
    });
  }

  // ------------------------------------------------------------------ boot

  async function start() {
    setupControls();
    syncControls();
    if (!ChartJs) D.setBanner("Не загрузилась библиотека графиков: показаны только таблицы.", "warn");
    var team = loadTeam();
    try {
      await loadDefinitions();
    } catch (e) {
      D.setError($("rp-error"), apiError(e));
    }
    await team;
    await load();
  }

  start();
})();

// ---- reminders (issue 13): the campaigns' figures, from /api/workspace/v1/reminders/stats.
// Cumulative per campaign (not bound to the period above): what followed each reminder.
(function () {
  "use strict";
  var section = document.getElementById("rp-reminders");
  if (!section) return;
  var COLUMNS = ["sent", "delivered", "failed", "skipped", "remaining", "opted_out", "link_clicks", "clicked", "followed"];
  fetch("/api/workspace/v1/reminders/stats", { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
    .then(function (resp) {
      if (!resp.ok) throw new Error(resp.statusText);
      return resp.json();
    })
    .then(function (data) {
      var rows = data.campaigns || [];
      if (!rows.length) return;
      var body = section.querySelector("tbody");
      rows.forEach(function (c) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-campaign", c.campaign);
        var name = document.createElement("td");
        name.textContent = c.campaign;
        tr.appendChild(name);
        COLUMNS.forEach(function (key) {
          var td = document.createElement("td");
          td.className = "rp-rem-" + key;
          td.textContent = String(c[key] || 0);
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      document.getElementById("rp-reminders-note").textContent =
        "За всё время кампании. «Доставлено» — принято платформой; «Отписались» и «Передали показания» — в течение " +
        data.followup_days + " дн. после напоминания.";
      section.hidden = false;
    })
    .catch(function () {
      /* the rest of the reports stands without this section */
    });
})();
// ---- end reminders
