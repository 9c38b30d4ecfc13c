// The template management page: lists, creates, edits and deletes canned answers
// through /api/workspace/v1/templates. Every text from the server goes in with
// textContent, never as HTML. Requests go through operator.js's api() (window.AbonentDesk),
// which sends the session's X-CSRF-Token header with every change.
(function () {
  "use strict";

  var D = window.AbonentDesk;
  var root = document.getElementById("templates-page");
  if (!D || !root) return;
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

  var clear = D.clear;

  function el(tag, className, text) {
    return D.el(tag, { className: className, text: text });
  }

  function request(method, path, body) {
    return D.api(method, "/templates" + path, body);
  }

  // The service's own words (a taken code, a too long title) with the fields at fault.
  function problem(err) {
    var text = D.errorText(err);
    if (Array.isArray(err.details) && err.details.length) {
      text += " (" + err.details.map(function (d) { return d.field + ": " + d.problem; }).join("; ") + ")";
    }
    return text;
  }

  // ------------------------------------------------------------------ the list
  function load() {
    return request("GET", "").then(function (data) {
      templates = data.templates || [];
      fillCategories(data.categories || []);
      render();
    }).catch(function (err) {
      listStatus.textContent = "Не удалось загрузить шаблоны: " + problem(err);
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
    // Long words or links wrap instead of pushing the buttons out of the panel, and the
    // text keeps its line breaks (operator.css).
    var main = el("td", "template-main");
    main.appendChild(el("strong", "template-title", t.title));
    main.appendChild(el("div", "muted small template-text", t.text));
    tr.appendChild(main);
    var kind = el("td");
    kind.setAttribute("data-label", "Вид");
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
    D.confirmInPage({
      title: "Удалить шаблон /" + t.code + "?",
      text: "«" + t.title + "» пропадёт из подсказок у всех, кто его видит.",
      ok: "Удалить",
      danger: true
    }).then(function (sure) {
      if (sure) removeNow(t);
    });
  }

  function removeNow(t) {
    request("DELETE", "/" + encodeURIComponent(t.id)).then(function () {
      if (editing && editing.id === t.id) resetForm();
      formOk.textContent = "Шаблон /" + t.code + " удалён.";
      return load();
    }).catch(function (err) { showError(problem(err)); });
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
      done = request("PUT", "/" + encodeURIComponent(editing.id), body);
    } else {
      body.shared = isAdmin && fShared ? fShared.checked : false;
      if (!body.category) body.category = null;
      done = request("POST", "", body);
    }
    fSubmit.disabled = true;
    done.then(function (data) {
      var saved = data.template;
      resetForm();
      formOk.textContent = "Шаблон /" + saved.code + " сохранён.";
      return load();
    }).catch(function (err) {
      showError(problem(err));
    }).then(function () {
      fSubmit.disabled = false;
    });
  });

  fCancel.addEventListener("click", resetForm);
  filterText.addEventListener("input", render);
  filterCategory.addEventListener("change", render);

  // ------------------------------------------------------------------ trying suggestions
  var trySeq = 0;
  tryQuery.addEventListener("input", D.debounce(function () {
    var seq = ++trySeq;
    var q = tryQuery.value;
    if (!q.trim()) { clear(tryResults); return; }
    request("GET", "/suggest?q=" + encodeURIComponent(q)).then(function (data) {
      if (seq !== trySeq) return;
      clear(tryResults);
      var found = data.suggestions || [];
      if (!found.length) tryResults.appendChild(el("li", "empty muted", "Нет подсказок"));
      found.forEach(function (t) { tryResults.appendChild(D.templateOption(t)); });
    }).catch(function (err) {
      if (seq !== trySeq) return;
      clear(tryResults);
      tryResults.appendChild(el("li", "form-error", problem(err)));
    });
  }, 150));

  load();
})();
