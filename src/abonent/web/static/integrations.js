/*!
 * Abonent workspace, for admins: the integrations page (outgoing webhooks and Python
 * hooks) and, on every other workspace page, the alert badge in the navigation when a
 * webhook was disabled after failing.
 *
 * Plain ES2017, no build step. Data comes from /api/admin/v1/integrations. Every string
 * from the server (a receiver's host, an error, a hook's name) reaches the page through
 * textContent only; nothing here assigns innerHTML.
 */
(function () {
  "use strict";

  var API = "/api/admin/v1/integrations";
  var REFRESH_MS = 15000;

  function meta(name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") || "" : "";
  }

  function request(method, path) {
    var init = { method: method, credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-CSRF-Token"] = meta("csrf-token");
    return fetch(API + path, init).then(function (resp) {
      return resp.text().then(function (raw) {
        var data = null;
        try {
          data = raw ? JSON.parse(raw) : null;
        } catch (e) {
          data = null;
        }
        if (!resp.ok) {
          var err = new Error((data && data.error && data.error.message) || resp.statusText || "Ошибка");
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

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function when(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "—";
    return pad(d.getDate()) + "." + pad(d.getMonth() + 1) + "." + d.getFullYear() + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function problemText(err) {
    if (err && err.status === 403) return "Недостаточно прав.";
    if (err && err.status === 401) return "Сессия закончилась — войдите снова.";
    return (err && err.message) || "Ошибка.";
  }

  // ------------------------------------------------------------------ the badge
  function badge(alerts) {
    var link = document.getElementById("nav-integrations");
    if (!link) return;
    var old = link.querySelector(".count");
    if (old) link.removeChild(old);
    if (!alerts.length) return;
    var mark = el("span", "count", String(alerts.length));
    mark.title = "Отключены вебхуки: " + alerts.map(function (a) { return a.webhook; }).join(", ");
    mark.setAttribute("data-alerts", String(alerts.length));
    link.appendChild(document.createTextNode(" "));
    link.appendChild(mark);
  }

  // ------------------------------------------------------------------ the page
  var STATE_LABELS = { active: "Работает", disabled: "Отключён", off: "Выключен в настройках" };
  var DELIVERY_LABELS = {
    pending: "ждёт",
    delivering: "отправляется",
    delivered: "доставлена",
    failed: "не доставлена"
  };

  function failureText(f) {
    var what = f.last_error || (f.last_status_code ? "HTTP " + f.last_status_code : "ошибка");
    return when(f.last_failure_at) + " · " + f.event_type + " · " + what + " (" + (DELIVERY_LABELS[f.status] || f.status) + ")";
  }

  function Page(root) {
    this.root = root;
    this.alerts = document.getElementById("int-alerts");
    this.table = document.querySelector("#webhooks tbody");
    this.status = document.getElementById("webhooks-status");
    this.hooksTable = document.getElementById("hooks");
    this.hooksStatus = document.getElementById("hooks-status");
    this.deliveriesPanel = document.getElementById("deliveries-panel");
    this.deliveriesHeading = document.getElementById("deliveries-heading");
    this.deliveries = document.querySelector("#deliveries tbody");
    this.notice = "";
  }

  Page.prototype.load = function () {
    var self = this;
    return request("GET", "")
      .then(function (data) {
        self.render(data);
        self.root.setAttribute("data-state", "ready");
      })
      .catch(function (err) {
        self.status.textContent = "Не удалось загрузить: " + problemText(err);
        self.root.setAttribute("data-state", "error");
      });
  };

  Page.prototype.render = function (data) {
    var alerts = data.alerts || [];
    badge(alerts);
    clear(this.alerts);
    if (alerts.length) {
      var self = this;
      alerts.forEach(function (a) {
        self.alerts.appendChild(
          el("p", null, "Вебхук «" + a.webhook + "» отключён " + when(a.since) + ": " + (a.reason || "ошибки доставки") + ". Доставки ждут; включите его снова, когда получатель заработает.")
        );
      });
    }
    this.alerts.hidden = !alerts.length;
    this.renderWebhooks(data.webhooks || []);
    this.renderHooks(data.hooks || { available: false, hooks: [] });
  };

  Page.prototype.renderWebhooks = function (webhooks) {
    var self = this;
    clear(this.table);
    // The outcome of the last action stays through the refreshes that follow it.
    this.status.textContent = webhooks.length ? this.notice : "Вебхуки не настроены (раздел [[webhooks]] настроек).";
    webhooks.forEach(function (w) {
      var tr = el("tr");
      tr.setAttribute("data-webhook", w.id);
      tr.setAttribute("data-state", w.state);

      var name = el("td");
      name.appendChild(el("strong", null, w.id));
      name.appendChild(el("div", "muted small", w.host));
      tr.appendChild(name);

      tr.appendChild(el("td", "small", (w.events || []).join(", ")));

      var state = el("td", w.state === "disabled" ? "warn" : null);
      state.appendChild(el("span", "webhook-state", STATE_LABELS[w.state] || w.state));
      if (w.state === "disabled") {
        state.appendChild(el("div", "small", "с " + when(w.disabled_at) + ": " + (w.disabled_reason || "")));
      } else if (w.consecutive_failures) {
        state.appendChild(el("div", "small muted", "ошибок подряд: " + w.consecutive_failures));
      }
      tr.appendChild(state);

      var backlog = el("td");
      backlog.appendChild(el("span", "webhook-backlog", String(w.backlog)));
      if (w.failed) backlog.appendChild(el("div", "small muted", "не доставлено: " + w.failed));
      tr.appendChild(backlog);

      var ok = el("td", "small", when(w.last_success_at));
      ok.appendChild(el("div", "muted", "за сутки: " + w.delivered_24h));
      tr.appendChild(ok);

      var failures = el("td", "small");
      var list = el("ul", "webhook-failures");
      (w.recent_failures || []).forEach(function (f) {
        list.appendChild(el("li", null, failureText(f)));
      });
      if ((w.recent_failures || []).length) failures.appendChild(list);
      else failures.textContent = "—";
      tr.appendChild(failures);

      var actions = el("td");
      if (w.state === "disabled") {
        var enable = el("button", "primary", "Включить снова");
        enable.type = "button";
        enable.setAttribute("data-action", "enable");
        enable.addEventListener("click", function () { self.enable(w.id, enable); });
        actions.appendChild(enable);
      }
      var logButton = el("button", null, "Журнал");
      logButton.type = "button";
      logButton.setAttribute("data-action", "log");
      logButton.addEventListener("click", function () { self.showLog(w.id); });
      actions.appendChild(logButton);
      tr.appendChild(actions);

      self.table.appendChild(tr);
    });
  };

  Page.prototype.enable = function (id, button) {
    var self = this;
    button.disabled = true;
    request("POST", "/webhooks/" + encodeURIComponent(id) + "/enable")
      .then(function (data) {
        self.notice = "Вебхук «" + id + "» включён; доставок возобновлено: " + data.resumed + ".";
        return self.load();
      })
      .catch(function (err) {
        button.disabled = false;
        self.notice = "Не удалось включить: " + problemText(err);
        self.status.textContent = self.notice;
      });
  };

  Page.prototype.showLog = function (id) {
    var self = this;
    request("GET", "/webhooks/" + encodeURIComponent(id) + "/deliveries?limit=50")
      .then(function (data) {
        self.deliveriesHeading.textContent = "Журнал доставок: " + id;
        clear(self.deliveries);
        (data.deliveries || []).forEach(function (d) {
          var tr = el("tr");
          tr.setAttribute("data-status", d.status);
          tr.appendChild(el("td", null, d.event_type));
          tr.appendChild(el("td", "small", when(d.created_at)));
          tr.appendChild(el("td", null, DELIVERY_LABELS[d.status] || d.status));
          tr.appendChild(el("td", null, String(d.attempts)));
          var last = d.last_status_code ? "HTTP " + d.last_status_code : "—";
          if (d.last_error && d.status !== "delivered") last = d.last_error;
          tr.appendChild(el("td", "small", last));
          tr.appendChild(el("td", "small muted", d.delivery_id));
          self.deliveries.appendChild(tr);
        });
        if (!(data.deliveries || []).length) {
          var empty = el("tr");
          var cell = el("td", "muted", "Доставок пока не было.");
          cell.colSpan = 6;
          empty.appendChild(cell);
          self.deliveries.appendChild(empty);
        }
        self.deliveriesPanel.hidden = false;
      })
      .catch(function (err) {
        self.status.textContent = "Не удалось загрузить журнал: " + problemText(err);
      });
  };

  Page.prototype.renderHooks = function (hooks) {
    var tbody = this.hooksTable.querySelector("tbody");
    clear(tbody);
    var found = hooks.hooks || [];
    if (hooks.error) {
      this.hooksStatus.textContent = "Хуки не смогли сообщить своё состояние: " + hooks.error;
    } else {
      this.hooksStatus.textContent = found.length ? "" : "Python-хуки не загружены.";
    }
    this.hooksTable.hidden = !found.length;
    found.forEach(function (h) {
      var tr = el("tr");
      tr.setAttribute("data-hook", h.name || "");
      tr.appendChild(el("td", null, h.name || "—"));
      tr.appendChild(el("td", "small", h.module || "—"));
      var types = h.event_types || h.events || [];
      tr.appendChild(el("td", "small", Array.isArray(types) ? types.join(", ") : String(types)));
      tr.appendChild(el("td", null, String(h.handled != null ? h.handled : h.handled_count != null ? h.handled_count : 0)));
      tr.appendChild(el("td", null, String(h.errors != null ? h.errors : h.error_count != null ? h.error_count : 0)));
      var cell = el("td", "small");
      var recent = h.recent_errors || [];
      if (h.load_error) {
        tr.setAttribute("data-load-error", "true");
        cell.textContent = "Не загрузился: " + h.load_error;
      } else if (recent.length) {
        var list = el("ul");
        recent.forEach(function (e) {
          list.appendChild(el("li", null, when(e.at) + " · " + (e.event_type || "") + " · " + (e.error || "")));
        });
        cell.appendChild(list);
      } else {
        cell.textContent = "—";
      }
      tr.appendChild(cell);
      tbody.appendChild(tr);
    });
  };

  // ------------------------------------------------------------------ boot
  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("integrations-page");
    if (root) {
      var page = new Page(root);
      page.load();
      setInterval(function () { page.load(); }, REFRESH_MS);
      return;
    }
    // Any other workspace page: only the badge (quietly: a failed look-up shows none).
    request("GET", "/alerts")
      .then(function (data) { badge((data && data.alerts) || []); })
      .catch(function () {});
  });
})();
