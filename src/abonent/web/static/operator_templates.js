// The template management page: lists, creates, edits and deletes canned answers
// through /api/workspace/v1/templates. Every text from the server goes in with
// textContent, never as HTML.
(function () {
  "use strict";

  var API = "/api/workspace/v1/templates";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var root = document.getElementById("templates-page");
  if (!root) return;
  var isAdmin = root.getAttribute("data-admin") === "true";

  var listEl = document.getElementById("list");
  var listStatus = document.getElementById("list-status");
  var filterText = document.getElementById("filter-text");
  var filterCategory = document.getElementById("filter-category");
  var datalist = document.getElementById("categories");
  var form = document.getElementById("template-form");
  var formHeading = document.getElementById("form-heading");
  var fCode = document.getElementById("f-code");
  var fTitle = document.getElementById("f-title");
  var fCategory = document.getElementById("f-category");
  var fText = document.getElementById("f-text");
  var fShared = document.getElementById("f-shared");
  var fSubmit = document.getElementById("f-submit");
  var fCancel = document.getElementById("f-cancel");
  var formError = document.getElementById("form-error");
  var formOk = document.getElementById("form-ok");
  var tryQuery = document.getElementById("try-query");
  var tryResults = document.getElementById("try-results");

  var templates = [];
  var editing = null; // the template being edited, or null when creating

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Text with its line breaks kept: text nodes and <br> elements, no markup parsed.
  function lines(node, text) {
    String(text).split("\n").forEach(function (line, i) {
      if (i) node.appendChild(document.createElement("br"));
      node.appendChild(document.createTextNode(line));
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function request(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: {} };
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = (data && data.error) || {};
          var message = error.message || ("Ошибка " + response.status);
          if (error.details && error.details.length) {
            message += " (" + error.details.map(function (d) { return d.field + ": " + d.problem; }).join("; ") + ")";
          }
          if (response.status === 401) message = "Сессия закончилась: войдите снова.";
          throw new Error(message);
        }
        return data;
      });
    });
  }

  // ------------------------------------------------------------------ the list
  function load() {
    return request("GET", API).then(function (data) {
      templates = data.templates || [];
      fillCategories(data.categories || []);
      render();
    }).catch(function (err) {
      listStatus.textContent = "Не удалось загрузить шаблоны: " + err.message;
    });
  }

  function fillCategories(categories) {
    var chosen = filterCategory.value;
    while (filterCategory.options.length > 1) filterCategory.remove(1);
    clear(datalist);
    categories.forEach(function (category) {
      var option = el("option", null, category);
      option.value = category;
      filterCategory.appendChild(option);
      var suggestion = document.createElement("option");
      suggestion.value = category;
      datalist.appendChild(suggestion);
    });
    if (categories.indexOf(chosen) >= 0) filterCategory.value = chosen;
  }

  function matches(t) {
    var category = filterCategory.value;
    if (category && t.category !== category) return false;
    var needle = filterText.value.trim().toLowerCase().replace(/^\//, "");
    if (!needle) return true;
    return [t.code, t.title, t.text, t.category || ""].some(function (s) {
      return s.toLowerCase().indexOf(needle) >= 0;
    });
  }

  function render() {
    clear(listEl);
    var shown = templates.filter(matches);
    if (!templates.length) {
      listStatus.textContent = "Шаблонов пока нет — создайте первый в форме рядом.";
    } else if (!shown.length) {
      listStatus.textContent = "Ничего не найдено.";
    } else {
      listStatus.textContent = "Шаблонов: " + shown.length + (shown.length < templates.length ? " из " + templates.length : "");
    }
    var groups = {};
    var order = [];
    shown.forEach(function (t) {
      var key = t.category || "";
      if (!groups[key]) { groups[key] = []; order.push(key); }
      groups[key].push(t);
    });
    order.sort(function (a, b) {
      if (!a) return 1;
      if (!b) return -1;
      return a.localeCompare(b, "ru");
    });
    order.forEach(function (key) {
      var head = el("tr", "template-category");
      var cell = el("th");
      cell.colSpan = 4;
      cell.appendChild(el("h4", null, key || "Без категории"));
      head.appendChild(cell);
      listEl.appendChild(head);
      groups[key].forEach(function (t) { listEl.appendChild(item(t)); });
    });
  }

  function item(t) {
    var tr = el("tr", "template-row");
    tr.setAttribute("data-id", String(t.id));
    if (editing && editing.id === t.id) tr.setAttribute("aria-selected", "true");
    tr.appendChild(el("td", "suggest-code", "/" + t.code));
    var main = el("td");
    // Long words or links must wrap, not push the buttons out of the panel (CSSOM
    // styles are allowed under the page's CSP; style attributes in markup are not).
    main.style.overflowWrap = "anywhere";
    main.appendChild(el("strong", "template-title", t.title));
    main.appendChild(lines(el("div", "muted small template-text"), t.text));
    tr.appendChild(main);
    var kind = el("td");
    kind.appendChild(el("span", t.shared ? "st" : "st st-online", t.shared ? "общий" : "личный"));
    tr.appendChild(kind);
    var actions = el("td");
    if (t.can_edit) {
      var edit = el("button", null, "Изменить");
      edit.type = "button";
      edit.setAttribute("aria-label", "Изменить шаблон /" + t.code);
      edit.addEventListener("click", function () { startEdit(t); });
      var del = el("button", "danger", "Удалить");
      del.type = "button";
      del.setAttribute("aria-label", "Удалить шаблон /" + t.code);
      del.addEventListener("click", function () { remove(t); });
      var box = el("div", "row");
      box.appendChild(edit);
      box.appendChild(del);
      actions.appendChild(box);
    }
    tr.appendChild(actions);
    return tr;
  }

  // ------------------------------------------------------------------ the form
  function showError(message) {
    formOk.textContent = "";
    formError.textContent = message;
    formError.hidden = !message;
  }

  function resetForm() {
    editing = null;
    form.reset();
    formHeading.textContent = "Новый шаблон";
    fSubmit.textContent = "Создать";
    fCancel.hidden = true;
    if (fShared) { fShared.disabled = false; fShared.checked = true; }
    showError("");
    render();
  }

  function startEdit(t) {
    editing = t;
    fCode.value = t.code;
    fTitle.value = t.title;
    fCategory.value = t.category || "";
    fText.value = t.text;
    if (fShared) { fShared.checked = t.shared; fShared.disabled = true; }
    formHeading.textContent = "Правка шаблона /" + t.code;
    fSubmit.textContent = "Сохранить";
    fCancel.hidden = false;
    showError("");
    render();
    fTitle.focus();
  }

  function remove(t) {
    if (!window.confirm("Удалить шаблон /" + t.code + " «" + t.title + "»?")) return;
    request("DELETE", API + "/" + encodeURIComponent(t.id)).then(function () {
      if (editing && editing.id === t.id) resetForm();
      formOk.textContent = "Шаблон /" + t.code + " удалён.";
      return load();
    }).catch(function (err) { showError(err.message); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    showError("");
    var body = {
      code: fCode.value.trim(),
      title: fTitle.value,
      text: fText.value,
      category: fCategory.value.trim()
    };
    var done;
    if (editing) {
      done = request("PUT", API + "/" + encodeURIComponent(editing.id), body);
    } else {
      body.shared = isAdmin && fShared ? fShared.checked : false;
      if (!body.category) body.category = null;
      done = request("POST", API, body);
    }
    fSubmit.disabled = true;
    done.then(function (data) {
      var saved = data.template;
      resetForm();
      formOk.textContent = "Шаблон /" + saved.code + " сохранён.";
      return load();
    }).catch(function (err) {
      showError(err.message);
    }).then(function () {
      fSubmit.disabled = false;
    });
  });

  fCancel.addEventListener("click", resetForm);
  filterText.addEventListener("input", render);
  filterCategory.addEventListener("change", render);

  // ------------------------------------------------------------------ trying suggestions
  var tryTimer = null;
  var trySeq = 0;
  tryQuery.addEventListener("input", function () {
    clearTimeout(tryTimer);
    tryTimer = setTimeout(function () {
      var seq = ++trySeq;
      var q = tryQuery.value;
      if (!q.trim()) { clear(tryResults); return; }
      request("GET", API + "/suggest?q=" + encodeURIComponent(q)).then(function (data) {
        if (seq !== trySeq) return;
        clear(tryResults);
        var found = data.suggestions || [];
        if (!found.length) tryResults.appendChild(el("li", "empty muted", "Нет подсказок"));
        found.forEach(function (s) {
          var li = el("li", "suggest-item");
          li.appendChild(el("span", "suggest-code", "/" + s.code));
          li.appendChild(el("span", "suggest-title", s.title));
          li.appendChild(el("span", "suggest-cat", s.category || ""));
          li.appendChild(el("span", "suggest-scope", s.shared ? "общий" : "личный"));
          li.appendChild(el("span", "suggest-text", s.text));
          tryResults.appendChild(li);
        });
      }).catch(function (err) {
        if (seq !== trySeq) return;
        clear(tryResults);
        tryResults.appendChild(el("li", "form-error", err.message));
      });
    }, 150);
  });

  load();
})();
