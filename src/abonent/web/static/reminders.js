/*!
 * Abonent workspace, for admins: reminder campaigns — the list with live progress, a
 * new campaign (the fields of `abonent reminders create`), its preview, and start /
 * pause / resume.
 *
 * Plain ES2017, no build step. Data comes from /api/admin/v1/reminders. Every string
 * from the server (a campaign's name, a rendered sample) reaches the page through
 * textContent only; nothing here assigns innerHTML.
 */
(function () {
  "use strict";

  var API = "/api/admin/v1/reminders";
  var REFRESH_MS = 3000;
  var KINDS = { payment_due: "Оплата", readings_window: "Показания", custom: "Свой текст" };
  var STATES = { draft: "Черновик", running: "Идёт", paused: "На паузе", done: "Завершена" };
  var ACTIONS = {
    draft: [["start", "Запустить"]],
    running: [["pause", "Приостановить"]],
    paused: [["resume", "Продолжить"]],
    done: [["start", "Запустить снова"]]
  };
  var REASONS = {
    opted_out: "отказались от напоминаний",
    no_messenger_identity: "не писали нам в мессенджер",
    whatsapp_outside_window_no_template: "WhatsApp вне 24-часового окна, шаблон не задан",
    blocked_or_unsubscribed: "заблокировали бота или отписались",
    identity_gone: "канал клиента удалён",
    no_conversation: "нет диалога",
    channel_not_configured: "канал не настроен"
  };

  var page = document.getElementById("reminders-page");
  if (!page) return;

  function meta(name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") || "" : "";
  }

  function request(method, path, body) {
    var init = {
      method: method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" }
    };
    if (method !== "GET") init.headers["X-CSRF-Token"] = meta("csrf-token");
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(API + path, init).then(function (resp) {
      return resp.text().then(function (raw) {
        var data = null;
        try {
          data = raw ? JSON.parse(raw) : null;
        } catch (e) {
          data = null;
        }
        if (!resp.ok) {
          var msg = (data && data.error && data.error.message) || resp.statusText || "Ошибка";
          if (data && Array.isArray(data.detail)) {
            msg = data.detail.map(function (d) { return (d.loc || []).slice(-1)[0] + ": " + d.msg; }).join("; ");
          }
          var err = new Error(msg);
          err.status = resp.status;
          throw err;
        }
        return data;
      });
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function cell(row, label, value) {
    var td = el("td", null, value);
    td.setAttribute("data-label", label);
    row.appendChild(td);
    return td;
  }

  var status = document.getElementById("campaigns-status");
  var tbody = document.querySelector("#campaigns tbody");

  function renderList(data) {
    var rows = data.campaigns || [];
    clear(tbody);
    status.textContent = rows.length ? "" : "Кампаний пока нет: создайте первую ниже.";
    rows.forEach(function (c) {
      var tr = el("tr");
      tr.setAttribute("data-campaign", c.name);
      tr.setAttribute("data-state", c.state);
      cell(tr, "Кампания", c.name);
      cell(tr, "Вид", KINDS[c.kind] || c.kind);
      cell(tr, "Расписание", c.schedule_text + (c.period ? " · период " + c.period : ""));
      cell(tr, "Состояние", STATES[c.state] || c.state).className = "rc-state";
      var p = c.progress || {};
      cell(tr, "Отправлено", p.sent || 0).className = "rc-sent";
      cell(tr, "Пропущено", p.skipped || 0).className = "rc-skipped";
      cell(tr, "Ошибок", p.failed || 0).className = "rc-failed";
      cell(tr, "Осталось", p.remaining || 0).className = "rc-remaining";
      var actions = cell(tr, "Действия", "");
      var preview = el("button", "rc-preview", "Предпросмотр");
      preview.type = "button";
      preview.addEventListener("click", function () { showPreview(c, preview); });
      actions.appendChild(preview);
      (ACTIONS[c.state] || []).forEach(function (a) {
        var b = el("button", "rc-" + a[0] + (a[0] === "start" ? " primary" : ""), a[1]);
        b.type = "button";
        b.addEventListener("click", function () { move(c, a[0], b); });
        actions.appendChild(document.createTextNode(" "));
        actions.appendChild(b);
      });
      tbody.appendChild(tr);
    });
    var list = document.getElementById("rc-channels");
    clear(list);
    ((data.defaults || {}).channels || []).forEach(function (t) {
      var o = el("option");
      o.value = t;
      list.appendChild(o);
    });
    var quiet = document.getElementById("rc-quiet");
    if (!quiet.value && data.defaults) quiet.value = data.defaults.quiet_hours || "";
    page.setAttribute("data-state", "ready");
  }

  var timer = null;
  function load() {
    return request("GET", "")
      .then(renderList)
      .catch(function (e) {
        status.textContent = "Не удалось загрузить кампании: " + e.message;
      })
      .then(function () {
        clearTimeout(timer);
        timer = setTimeout(load, REFRESH_MS);
      });
  }

  function move(c, action, button) {
    button.disabled = true;
    request("POST", "/" + c.id + "/" + action)
      .then(load)
      .catch(function (e) {
        status.textContent = e.message;
        button.disabled = false;
      });
  }

  function fillTable(id, entries, label) {
    var body = document.querySelector("#" + id + " tbody");
    clear(body);
    if (!entries.length) {
      var tr = el("tr");
      var td = el("td", "muted", "—");
      td.colSpan = 2;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    entries.forEach(function (pair) {
      var tr = el("tr");
      cell(tr, label, pair[0]);
      cell(tr, "Клиентов", pair[1]);
      body.appendChild(tr);
    });
  }

  function showPreview(c, button) {
    var panel = document.getElementById("preview-panel");
    button.disabled = true;
    request("GET", "/" + c.id + "/preview")
      .then(function (data) {
        var p = data.preview;
        panel.hidden = false;
        panel.setAttribute("data-campaign", c.name);
        document.getElementById("preview-heading").textContent = "Предпросмотр: " + c.name;
        document.getElementById("preview-summary").textContent =
          "Аудитория: " + p.audience + ", получат: " + p.reached + ".";
        fillTable("preview-channels", Object.keys(p.channels).sort().map(function (k) { return [k, p.channels[k]]; }), "Канал");
        fillTable("preview-skipped", Object.keys(p.skipped).sort().map(function (k) { return [REASONS[k] || k, p.skipped[k]]; }), "Причина");
        var samples = document.getElementById("preview-samples");
        clear(samples);
        if (!p.samples.length) samples.appendChild(el("p", "muted", "Некому отправить."));
        p.samples.forEach(function (s) {
          var box = el("div", "panel rc-sample");
          box.appendChild(el("p", "muted small", s.channel + " · " + (s.mode === "template" ? "шаблон WhatsApp" : "текст")));
          box.appendChild(el("p", null, s.text));
          samples.appendChild(box);
        });
        panel.scrollIntoView({ block: "nearest" });
      })
      .catch(function (e) {
        status.textContent = "Предпросмотр не удался: " + e.message;
      })
      .then(function () {
        button.disabled = false;
      });
  }

  var form = document.getElementById("new-campaign");
  var formError = document.getElementById("new-error");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    formError.hidden = true;
    var body = {};
    ["name", "kind", "text", "schedule", "cron", "start_at", "min_balance", "due_within_days", "channel", "quiet_hours", "whatsapp_template"].forEach(function (key) {
      var input = form.elements[key];
      var value = input ? input.value.trim() : "";
      if (value !== "") body[key] = value;
    });
    if (body.min_balance) body.min_balance = body.min_balance.replace(",", ".");
    if (body.due_within_days) body.due_within_days = parseInt(body.due_within_days, 10);
    if (body.quiet_hours === undefined) body.quiet_hours = "";
    var submit = document.getElementById("rc-create");
    submit.disabled = true;
    request("POST", "", body)
      .then(function () {
        form.reset();
        return load();
      })
      .catch(function (e) {
        formError.textContent = e.message;
        formError.hidden = false;
      })
      .then(function () {
        submit.disabled = false;
      });
  });

  load();
})();
