/*!
 * Abonent workspace: the editors' review page (/operator/kb).
 *
 * Plain ES2017, no build step. Data comes from /api/kb/v1. Every string from the
 * server (a customer's message, a topic's answer) reaches the page through textContent
 * only; nothing here assigns innerHTML.
 */
(function () {
  "use strict";

  var API = "/api/kb/v1";
  var POLL_MS = 1000;
  var page = document.getElementById("kb-page");
  if (!page) return;
  var canEdit = page.getAttribute("data-can-edit") === "true";
  var topics = [];
  var polling = null;
  var wasRunning = false;

  function $(id) { return document.getElementById(id); }

  function meta(name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") || "" : "";
  }

  function request(method, path, body) {
    var init = { method: method, credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } };
    if (method !== "GET") {
      init.headers["X-CSRF-Token"] = meta("csrf-token");
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body || {});
    }
    return fetch(API + path, init).then(function (resp) {
      return resp.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = null; }
        if (!resp.ok) {
          var err = new Error((data && data.error && data.error.message) || resp.statusText || "Ошибка");
          err.status = resp.status;
          throw err;
        }
        return data;
      });
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function showError(err) {
    var box = $("kb-error");
    box.textContent = err ? err.message || String(err) : "";
    box.hidden = !err;
  }

  function topicTitle(id) {
    for (var i = 0; i < topics.length; i++) if (topics[i].id === id) return topics[i].title;
    return id;
  }

  function topicSelect(selected) {
    var select = el("select", "topic-choice");
    topics.forEach(function (t) {
      if (t.kind === "service") return;
      var option = el("option", null, t.title + " (" + t.id + ")");
      option.value = t.id;
      if (t.id === selected) option.selected = true;
      select.appendChild(option);
    });
    return select;
  }

  // ------------------------------------------------------------------ review
  function loadReview() {
    var q = [];
    if ($("review-since").value) q.push("since=" + encodeURIComponent($("review-since").value));
    if ($("review-until").value) q.push("until=" + encodeURIComponent($("review-until").value));
    $("review-status").textContent = "Загрузка…";
    return request("GET", "/review" + (q.length ? "?" + q.join("&") : "")).then(function (data) {
      topics = data.topics;
      fillTopics();
      drawGroups(data);
      page.setAttribute("data-state", "ready");
    }).catch(showError);
  }

  function drawGroups(data) {
    var box = $("review-groups");
    box.textContent = "";
    $("review-status").textContent = data.messages
      ? "Сообщений: " + data.messages + ", групп: " + data.groups.length + " (" + data.since + " — " + data.until + ")"
      : "За этот период нераспознанных сообщений нет.";
    data.groups.forEach(function (group, n) { box.appendChild(drawGroup(group, n)); });
  }

  function drawGroup(group, n) {
    var card = el("article", "kb-group");
    card.setAttribute("data-group", String(n));
    var head = el("h3", null, group.size + " сообщ.");
    var like = group.intents.map(function (i) { return i.title + " " + i.score.toFixed(2); }).join(", ");
    card.appendChild(head);
    card.appendChild(el("p", "muted small kb-resembles", "Похоже на: " + (like || "—")));
    var list = el("ul", "plain kb-messages");
    group.messages.forEach(function (m) {
      var item = el("li", "kb-message");
      var label = el("label");
      var box = el("input");
      box.type = "checkbox";
      box.checked = true;
      box.value = String(m.id);
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + m.text));
      if (m.count > 1) label.appendChild(el("span", "muted small", " ×" + m.count));
      item.appendChild(label);
      list.appendChild(item);
    });
    card.appendChild(list);
    if (!canEdit) return card;
    var actions = el("div", "kb-actions");
    var select = topicSelect(group.intents.length ? group.intents[0].intent : null);
    var add = el("button", "primary kb-add", "Добавить как примеры");
    add.type = "button";
    var out = el("button", "kb-out", "Не наша тема");
    out.type = "button";
    var fresh = el("button", "kb-new", "Новая тема…");
    fresh.type = "button";
    actions.appendChild(select);
    actions.appendChild(add);
    actions.appendChild(out);
    actions.appendChild(fresh);
    card.appendChild(actions);
    var form = el("div", "kb-new-form");
    form.hidden = true;
    var id = el("input", "kb-new-id");
    id.placeholder = "id (латиницей)";
    var title = el("input", "kb-new-title");
    title.placeholder = "Название";
    var answer = el("textarea", "kb-new-answer");
    answer.placeholder = "Ответ";
    var create = el("button", "primary kb-new-save", "Создать тему");
    create.type = "button";
    [id, title, answer, create].forEach(function (x) { form.appendChild(x); });
    card.appendChild(form);

    function chosen() {
      return Array.prototype.map.call(list.querySelectorAll("input:checked"), function (b) { return Number(b.value); });
    }
    function send(body) {
      body.message_ids = chosen();
      return request("POST", "/edits", body).then(function () {
        card.classList.add("kb-done");
        card.appendChild(el("p", "small kb-saved", "Сохранено. Примените переобучением."));
        actions.hidden = true;
        form.hidden = true;
        loadEdits();
      }).catch(showError);
    }
    add.addEventListener("click", function () { send({ kind: "examples", intent: select.value }); });
    out.addEventListener("click", function () { send({ kind: "out_of_scope" }); });
    fresh.addEventListener("click", function () { form.hidden = !form.hidden; });
    create.addEventListener("click", function () {
      send({ kind: "new_topic", intent: id.value.trim(), title: title.value.trim() || null, answer: { text: answer.value } });
    });
    return card;
  }

  // ------------------------------------------------------------------ answers
  function fillTopics() {
    var select = $("topic-select");
    var keep = select.value;
    select.textContent = "";
    topics.forEach(function (t) {
      if (!t.answer) return;
      var option = el("option", null, t.title + " (" + t.id + ")");
      option.value = t.id;
      select.appendChild(option);
    });
    if (keep) select.value = keep;
    showAnswer();
  }

  function current() {
    var id = $("topic-select").value;
    for (var i = 0; i < topics.length; i++) if (topics[i].id === id) return topics[i];
    return null;
  }

  function showAnswer() {
    var t = current();
    $("answer-text").value = t && t.answer ? t.answer.text : "";
    $("answer-buttons").value = t && t.answer ? t.answer.buttons.map(function (b) { return b.title + " | " + b.payload; }).join("\n") : "";
    $("answer-previews").textContent = "";
  }

  function answerBody() {
    var t = current();
    var buttons = $("answer-buttons").value.split("\n").map(function (line) {
      var parts = line.split("|");
      return { title: (parts[0] || "").trim(), payload: (parts.slice(1).join("|") || parts[0] || "").trim() };
    }).filter(function (b) { return b.title; });
    return { text: $("answer-text").value, buttons: buttons, links: t && t.answer ? t.answer.links : [] };
  }

  function preview() {
    return request("POST", "/preview", answerBody()).then(function (data) {
      var box = $("answer-previews");
      box.textContent = "";
      box.appendChild(el("p", "muted small", "Длина: " + data.length + " символов"));
      data.channels.forEach(function (c) {
        var card = el("div", "kb-preview");
        card.setAttribute("data-channel", c.channel);
        card.appendChild(el("h4", null, c.channel));
        c.parts.forEach(function (p) { card.appendChild(el("div", "msg-text kb-bubble", p)); });
        if (c.buttons) {
          var row = el("div", "msg-buttons");
          c.buttons.forEach(function (b) { row.appendChild(el("span", "chip kb-button", b)); });
          card.appendChild(row);
        }
        if (c.note) card.appendChild(el("p", "muted small", c.note));
        box.appendChild(card);
      });
    }).catch(showError);
  }

  function saveAnswer() {
    var t = current();
    if (!t) return;
    request("POST", "/edits", { kind: "answer", intent: t.id, answer: answerBody() }).then(function () {
      $("answer-status").textContent = "Ответ сохранён.";
      loadEdits();
      loadTopics();
    }).catch(showError);
  }

  function loadTopics() {
    return request("GET", "/topics").then(function (data) { topics = data.topics; fillTopics(); }).catch(showError);
  }

  // ------------------------------------------------------------------ edits
  var KIND = { examples: "примеры", out_of_scope: "не наша тема", new_topic: "новая тема", answer: "ответ" };

  function loadEdits() {
    return request("GET", "/edits").then(function (data) {
      var body = $("edits").querySelector("tbody");
      body.textContent = "";
      data.edits.forEach(function (e) {
        var tr = el("tr");
        tr.appendChild(el("td", null, e.id));
        tr.appendChild(el("td", null, KIND[e.kind] + (e.texts.length ? " (" + e.texts.length + ")" : "") + (e.id <= data.in_use_upto ? "" : " · ждёт обучения")));
        tr.appendChild(el("td", null, e.intent ? topicTitle(e.intent) : "—"));
        tr.appendChild(el("td", null, e.author));
        tr.appendChild(el("td", null, e.created_at ? new Date(e.created_at).toLocaleString("ru-RU") : ""));
        body.appendChild(tr);
      });
      $("edits-diff").textContent = data.diff || "Правок нет.";
    }).catch(showError);
  }

  // ------------------------------------------------------------------ training
  var STATUS = { running: "Идёт обучение", accepted: "Новая модель принята", rejected: "Новая модель хуже: оставлена прежняя", failed: "Обучение не удалось" };

  function pct(x) { return (x * 100).toFixed(1) + "%"; }

  function drawTraining(data) {
    var t = data.training;
    var bar = $("train-progress");
    if (!t) { $("train-status").textContent = "Переобучений ещё не было."; bar.hidden = true; return; }
    bar.hidden = t.status !== "running";
    bar.value = t.progress;
    $("train-status").textContent = STATUS[t.status] + (t.status === "running" ? " — " + Math.round(t.progress * 100) + "%, " + t.stage : "") + (t.error ? ": " + t.error : "");
    page.setAttribute("data-training", t.status);
    var start = $("train-start");
    if (start) start.disabled = t.status === "running";
    var figures = $("train-figures");
    var r = t.report;
    figures.hidden = !r;
    if (r) {
      var body = figures.querySelector("tbody");
      body.textContent = "";
      [["Отложенная часть базы знаний (" + r.before.kb_n + ")", r.before.kb, r.after.kb],
       ["Примеры редакторов (" + r.before.review_n + ")", r.before.review, r.after.review]].forEach(function (row) {
        var tr = el("tr");
        tr.appendChild(el("td", null, row[0]));
        tr.appendChild(el("td", null, pct(row[1])));
        tr.appendChild(el("td", null, pct(row[2])));
        body.appendChild(tr);
      });
      var list = $("train-changed-list");
      list.textContent = "";
      (r.changed || []).forEach(function (c) {
        list.appendChild(el("li", "kb-changed", "«" + c.text + "»: " + topicTitle(c.before) + " → " + topicTitle(c.after)));
      });
      $("train-changed").hidden = !(r.changed && r.changed.length);
    }
    if (t.status === "running") schedule();
    else if (wasRunning) loadEdits();  // the edits it learned from are in use now
    wasRunning = t.status === "running";
  }

  function schedule() {
    if (polling) return;
    polling = setTimeout(function () { polling = null; loadTraining(); }, POLL_MS);
  }

  function loadTraining() {
    return request("GET", "/train").then(drawTraining).catch(showError);
  }

  var start = $("train-start");
  if (start) start.addEventListener("click", function () {
    start.disabled = true;
    request("POST", "/train").then(function (data) { drawTraining(data); schedule(); }).catch(function (err) { start.disabled = false; showError(err); });
  });
  $("review-form").addEventListener("submit", function (ev) { ev.preventDefault(); showError(null); loadReview(); });
  $("topic-select").addEventListener("change", showAnswer);
  $("answer-preview").addEventListener("click", preview);
  var save = $("answer-save");
  if (save) save.addEventListener("click", saveAnswer);

  loadReview().then(loadEdits).then(loadTraining);
})();
