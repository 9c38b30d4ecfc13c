/*!
 * Abonent operator workspace: sign-in, the desk, and helpers shared with supervisor.js.
 *
 * Plain ES2017, no build step, no framework. Data comes from the workspace JSON API
 * (/api/workspace/v1) and live events from its WebSocket.
 *
 * SAFETY: every string that came from a customer, an operator, a template, the CRM or
 * the billing reaches the page through textContent / createElement / setAttribute on
 * safe attributes only. Nothing here ever assigns innerHTML or insertAdjacentHTML.
 * Links from data get an href only when they are http(s).
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------ basics

  function meta(name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") || "" : "";
  }

  var API = meta("api-base") || "/api/workspace/v1";
  var csrfToken = meta("csrf-token");
  var script = document.currentScript;
  var ME_ID = script ? Number(script.getAttribute("data-user-id") || 0) : 0;
  var ME_ROLE = script ? script.getAttribute("data-role") || "" : "";
  var RANK = { operator: 1, supervisor: 2, admin: 3 };

  var STATUS_LABELS = { online: "На линии", break: "Перерыв", offline: "Не в сети" };
  var CONV_STATUS_LABELS = {
    bot: "у бота",
    queued: "в очереди",
    assigned: "у оператора",
    closed: "закрыт"
  };
  var CHANNEL_LABELS = {
    web: "Сайт",
    webchat: "Сайт",
    telegram: "Telegram",
    vk: "ВКонтакте",
    max: "MAX",
    whatsapp: "WhatsApp",
    viber: "Viber",
    sms: "SMS",
    email: "Почта"
  };
  var ATTACHMENT_LABELS = {
    photo: "Фото",
    sticker: "Стикер",
    voice: "Голосовое",
    video: "Видео",
    file: "Файл",
    location: "Геопозиция",
    contact: "Контакт",
    other: "Вложение"
  };
  var ERROR_TEXTS = {
    network: "Нет связи с сервером. Проверьте подключение.",
    csrf: "Сессия устарела — перезагрузите страницу.",
    not_signed_in: "Сессия закончилась — войдите снова.",
    forbidden: "Недостаточно прав.",
    gone: "Диалог уже недоступен: его взял другой оператор или он закрыт.",
    not_yours: "Этот диалог назначен не вам.",
    not_found: "Не найдено.",
    empty: "Сообщение пустое.",
    too_long: "Сообщение слишком длинное.",
    note: "Напишите заметку для следующего оператора.",
    target: "Выберите оператора или группу.",
    resolution: "Укажите, чем закончился диалог.",
    no_operator: "Такого оператора нет или он отключён.",
    not_online: "Вы не на линии. Включите статус «На линии», чтобы брать диалоги и отвечать.",
    operator_unavailable: "Коллега не на линии: выберите того, кто на линии, или передайте диалог группе.",
    unfilled_placeholder: "Замените в ответе выделенные пропуски шаблона — клиент не должен их увидеть.",
    bad_credentials: "Неверный логин или пароль.",
    throttled: "Слишком много попыток входа. Подождите и попробуйте снова.",
    file_too_large: "Файл слишком большой для отправки.",
    unsupported_type: "Такой файл не отправить: только фото (JPEG, PNG, WebP, HEIC) или PDF.",
    empty_file: "Файл пустой.",
    image_too_large: "У фото слишком большое разрешение — уменьшите его.",
    file_unavailable: "Файл не удалось получить из мессенджера.",
    not_fetched_yet: "Файл ещё загружается из мессенджера — попробуйте через минуту."
  };

  function ApiError(status, code, message, details) {
    var err = new Error(message);
    err.name = "ApiError";
    err.status = status;
    err.code = code;
    err.details = details;
    return err;
  }

  function errorText(err) {
    if (!err) return "Ошибка.";
    if (err.code && ERROR_TEXTS[err.code]) return ERROR_TEXTS[err.code];
    if (err.status === 429) return ERROR_TEXTS.throttled;
    if (err.status === 403) return ERROR_TEXTS.forbidden;
    if (err.status >= 500) return "Ошибка на сервере (" + err.status + "). Попробуйте ещё раз.";
    return err.message || "Ошибка.";
  }

  var redirecting = false;

  function toLogin() {
    if (redirecting) return;
    redirecting = true;
    var here = location.pathname + location.search + location.hash;
    location.assign("/operator/login?next=" + encodeURIComponent(here));
  }

  /** JSON request to the workspace API; rejects with ApiError. */
  async function api(method, path, body, options) {
    var opts = options || {};
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store"
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = csrfToken;
    var resp;
    try {
      resp = await fetch(API + path, init);
    } catch (e) {
      throw ApiError(0, "network", ERROR_TEXTS.network);
    }
    var data = null;
    var raw = await resp.text();
    if (raw) {
      try {
        data = JSON.parse(raw);
      } catch (e) {
        data = null;
      }
    }
    if (!resp.ok) {
      var e2 = (data && data.error) || {};
      if (resp.status === 401 && !opts.noRedirect) toLogin();
      throw ApiError(resp.status, e2.code || "http_" + resp.status, e2.message || resp.statusText, e2.details);
    }
    return data;
  }

  /** createElement with text only: el("div", {className: "x", text: s, attrs: {...}}, [children]). */
  function el(tag, props, children) {
    var node = document.createElement(tag);
    var p = props || {};
    if (p.className) node.className = p.className;
    if (p.text !== undefined && p.text !== null) node.textContent = String(p.text);
    if (p.title) node.title = String(p.title);
    if (p.attrs) {
      Object.keys(p.attrs).forEach(function (k) {
        var v = p.attrs[k];
        if (v !== undefined && v !== null && v !== false) node.setAttribute(k, String(v));
      });
    }
    if (p.dataset) {
      Object.keys(p.dataset).forEach(function (k) {
        node.dataset[k] = String(p.dataset[k]);
      });
    }
    if (p.onClick) node.addEventListener("click", p.onClick);
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function $(id) {
    return document.getElementById(id);
  }

  function show(node, visible) {
    if (node) node.hidden = !visible;
  }

  function setError(node, err) {
    if (!node) return;
    if (!err) {
      node.textContent = "";
      node.hidden = true;
      return;
    }
    node.textContent = typeof err === "string" ? err : errorText(err);
    node.hidden = false;
  }

  function safeUrl(url) {
    if (typeof url !== "string" || !url) return null;
    try {
      var u = new URL(url, location.href);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function formatDuration(seconds) {
    var s = Math.max(0, Math.floor(seconds || 0));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var sec = s % 60;
    if (h > 0) return h + ":" + pad(m) + ":" + pad(sec);
    return m + ":" + pad(sec);
  }

  function formatTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    var now = new Date();
    var hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    if (d.toDateString() === now.toDateString()) return hm;
    return pad(d.getDate()) + "." + pad(d.getMonth() + 1) + "." + d.getFullYear() + " " + hm;
  }

  function channelLabel(type, id) {
    return CHANNEL_LABELS[type] || CHANNEL_LABELS[id] || id || type || "";
  }

  function debounce(fn, ms) {
    var t = null;
    return function () {
      var args = arguments;
      if (t) clearTimeout(t);
      t = setTimeout(function () {
        t = null;
        fn.apply(null, args);
      }, ms);
    };
  }

  /** A coalescing runner: calls while one is running trigger exactly one more run. */
  function serial(fn) {
    var running = false;
    var again = false;
    return async function run() {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          try {
            await fn();
          } catch (e) {
            if (window.console) console.warn("refresh failed", e);
          }
        } while (again);
      } finally {
        running = false;
      }
    };
  }

  var STATUS_ORDER = { online: 0, break: 1, offline: 2 };

  /** Sort order for people lists: on the line, on a break, away; then by name. */
  function byStatusThenName(a, b) {
    var x = a.status in STATUS_ORDER ? STATUS_ORDER[a.status] : 3;
    var y = b.status in STATUS_ORDER ? STATUS_ORDER[b.status] : 3;
    return x - y || String(a.name).localeCompare(String(b.name));
  }

  function confidenceText(c) {
    if (typeof c !== "number" || !isFinite(c)) return "";
    var pct = c <= 1 ? Math.round(c * 100) : Math.round(c);
    return pct + "%";
  }

  /** What the bot made of a message, in words: «тема: Оплата, 93%», «не распознано». */
  function intentText(author, meta) {
    var title = String(meta.intent_title || meta.intent);
    if (meta.intent === "fallback" || meta.recognised === false) return "не распознано";
    if (author !== "customer") return "тема: " + title;
    var conf = confidenceText(meta.confidence);
    return "тема: " + title + (conf ? ", " + conf : "");
  }

  // Blanks a template leaves where a value is unknown (operators/templates.py makes and
  // refuses the same ones): «[имя]», «[нет в настройках: links.payment]», a raw {name}.
  var BLANK_RE = /\[имя\]|\[лицевой сч[её]т\]|\[оператор\]|\[нет в настройках: [a-z_.]+\]|\{(?:name|account|operator|(?:company|links|readings)\.[a-z_]+)\}/g;

  function findBlanks(text) {
    var found = [];
    var m;
    BLANK_RE.lastIndex = 0;
    while ((m = BLANK_RE.exec(String(text || ""))) !== null) {
      found.push({ start: m.index, end: m.index + m[0].length, text: m[0] });
    }
    return found;
  }

  /** Russian dates as they are said: «3 декабря 2026». */
  var MONTHS = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября", "декабря"];

  function formatDay(isoDate) {
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(isoDate || ""));
    if (!m) return isoDate || "";
    return Number(m[3]) + " " + MONTHS[Number(m[2]) - 1] + " " + m[1];
  }

  /**
   * An in-page confirmation (the browser's confirm() is modal for the whole tab, looks
   * foreign and cannot be styled): resolves true when the person confirms.
   */
  function confirmInPage(options) {
    var o = options || {};
    return new Promise(function (resolve) {
      var dialog = el("dialog", { className: "confirm-dialog", attrs: { "aria-labelledby": "confirm-title" } });
      var ok = el("button", {
        className: "primary" + (o.danger ? " danger" : ""),
        text: o.ok || "Да",
        attrs: { type: "button", "data-confirm": "ok" }
      });
      var cancel = el("button", { text: o.cancel || "Отмена", attrs: { type: "button", "data-confirm": "cancel" } });
      dialog.appendChild(el("h2", { text: o.title || "Подтвердите действие", attrs: { id: "confirm-title" } }));
      if (o.text) dialog.appendChild(el("p", { text: o.text }));
      dialog.appendChild(el("div", { className: "row" }, [ok, cancel]));
      var answered = false;
      function done(value) {
        if (answered) return;
        answered = true;
        if (dialog.open) dialog.close();
        dialog.remove();
        resolve(value);
      }
      ok.addEventListener("click", function () {
        done(true);
      });
      cancel.addEventListener("click", function () {
        done(false);
      });
      dialog.addEventListener("close", function () {
        done(false);
      });
      document.body.appendChild(dialog);
      dialog.showModal();
      ok.focus();
    });
  }

  // ------------------------------------------------------------------ files

  function humanSize(bytes) {
    if (typeof bytes !== "number" || bytes <= 0) return "";
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1).replace(".", ",") + " МБ";
    return Math.max(1, Math.round(bytes / 1024)) + " КБ";
  }

  /** Stored photos as thumbnails that open full size, PDFs as a link with name and size.
   *  Every opening goes through the audited route of the workspace API. */
  function renderFiles(list) {
    if (!Array.isArray(list) || !list.length) return null;
    var box = el("div", { className: "msg-files", attrs: { "aria-label": "Файлы" } });
    list.forEach(function (f) {
      if (!f || f.id === undefined || f.id === null) return;
      var url = API + "/attachments/" + encodeURIComponent(String(f.id));
      var name = String(f.name || "");
      if (f.kind === "image") {
        var img = el("img", { className: "msg-thumb", attrs: { src: url, alt: name || "Фото", loading: "lazy" } });
        box.appendChild(
          el("a", {
            className: "msg-thumb-link",
            title: "Открыть фото целиком: " + name,
            attrs: { href: url, target: "_blank", rel: "noopener" }
          }, [img])
        );
      } else {
        box.appendChild(
          el("a", {
            className: "msg-doc",
            attrs: { href: url, download: name || "document.pdf" }
          }, [el("span", { className: "msg-doc-name", text: name }), el("span", { className: "msg-doc-size muted", text: humanSize(f.size) })])
        );
      }
    });
    return box;
  }

  /** The attach button of the reply box: the file goes to the customer at once, with the
   *  reply box's text as its caption (the blanks of a template must be filled first). */
  function bindAttach(desk) {
    var bar = document.querySelector("#composer-form .composer-bar");
    var send = $("btn-send");
    if (!bar || !send) return;
    var input = el("input", {
      className: "visually-hidden",
      attrs: {
        type: "file",
        id: "attach-input",
        accept: "image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,application/pdf",
        tabindex: "-1",
        "aria-hidden": "true"
      }
    });
    var button = el("button", {
      className: "attach",
      text: "Прикрепить файл",
      title: "Отправить клиенту фото или PDF",
      attrs: { type: "button", id: "btn-attach" }
    });
    button.addEventListener("click", function () {
      input.click();
    });
    input.addEventListener("change", async function () {
      var file = input.files && input.files[0];
      input.value = "";
      var id = desk.currentId;
      var box = $("composer");
      if (!file || !id || box.disabled) return;
      if (desk.updateBlanks().length) {
        setError($("composer-error"), ERROR_TEXTS.unfilled_placeholder);
        return;
      }
      var text = box.value.trim();
      var form = new FormData();
      form.append("file", file, file.name);
      if (text) form.append("text", text);
      button.disabled = true;
      setError($("composer-error"), null);
      try {
        var resp = await fetch(API + "/conversations/" + id + "/attachments", {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRF-Token": csrfToken, Accept: "application/json" },
          body: form
        });
        var data = null;
        try {
          data = await resp.json();
        } catch (e) {
          data = null;
        }
        if (!resp.ok) {
          var e2 = (data && data.error) || {};
          throw ApiError(resp.status, e2.code || "http_" + resp.status, e2.message || resp.statusText, e2.details);
        }
        if (desk.currentId === id && box.value.trim() === text) box.value = "";
        desk.refreshConversation();
      } catch (e) {
        setError($("composer-error"), "Файл не отправлен: " + errorText(e));
      } finally {
        button.disabled = false;
        desk.updateBlanks();
      }
    });
    bar.insertBefore(input, send);
    bar.insertBefore(button, send);
  }

  // ------------------------------------------------------------------ messages

  function authorLabel(m) {
    switch (m.author) {
      case "customer":
        return "Клиент";
      case "bot":
        return "Бот";
      case "operator":
        return m.author_name ? "Оператор " + m.author_name : "Оператор";
      case "note":
        return m.author_name ? "Заметка · " + m.author_name : "Заметка";
      case "system":
        return "Система";
      default:
        return String(m.author || "");
    }
  }

  /** One message as a DOM node; text only. */
  function renderMessage(m, context) {
    var ctx = context || {};
    var author = String(m.author || "system");
    var meta = m.meta || {};
    var head = el("div", { className: "msg-head" }, [
      el("span", { className: "msg-author", text: authorLabel(m) })
    ]);
    if ((author === "bot" || author === "customer") && meta.intent) {
      head.appendChild(
        el("span", {
          className: "msg-intent",
          text: intentText(author, meta),
          title: author === "customer" ? "Как бот понял сообщение" : "Тема ответа бота"
        })
      );
    }
    if (m.channel_id && ctx.channelTypes) {
      var label = channelLabel(ctx.channelTypes[m.channel_id], m.channel_id);
      if (m.channel_id !== ctx.mainChannel) {
        head.appendChild(el("span", { className: "msg-channel", text: label }));
      }
    }
    head.appendChild(
      el("time", { className: "msg-time", text: formatTime(m.created_at), attrs: { datetime: m.created_at } })
    );

    var node = el(
      "div",
      {
        className: "msg msg-" + author.replace(/[^a-z]/g, ""),
        attrs: { "data-id": m.id, "data-author": author, "data-conversation": m.conversation_id }
      },
      [head]
    );
    if (m.text) node.appendChild(el("div", { className: "msg-text", text: m.text }));

    var buttons = Array.isArray(m.buttons) ? m.buttons : [];
    if (buttons.length) {
      node.appendChild(
        el(
          "div",
          { className: "msg-buttons", attrs: { "aria-label": "Кнопки" } },
          buttons.map(function (b) {
            return el("span", { className: "chip", text: (b && b.title) || "" });
          })
        )
      );
    }

    var attachments = Array.isArray(meta.attachments) ? meta.attachments : [];
    if (Array.isArray(m.attachments) && m.attachments.length) {
      // Photos and documents that were stored are shown below as files, not as labels.
      attachments = attachments.filter(function (a) {
        var k = typeof a === "string" ? a : a && a.kind;
        return k !== "photo" && k !== "file";
      });
    }
    if (attachments.length) {
      var list = el("ul", { className: "msg-attachments", attrs: { "aria-label": "Вложения" } });
      attachments.forEach(function (a) {
        var item = typeof a === "string" ? { kind: a } : a || {};
        var kind = ATTACHMENT_LABELS[item.kind] || ATTACHMENT_LABELS.other;
        var li = el("li", null, [kind + (item.name ? ": " : "")]);
        var href = safeUrl(item.url);
        if (href) {
          li.appendChild(
            el("a", {
              text: item.name || "открыть",
              attrs: { href: href, target: "_blank", rel: "noopener noreferrer" }
            })
          );
        } else if (item.name) {
          li.appendChild(document.createTextNode(String(item.name)));
        }
        list.appendChild(li);
      });
      node.appendChild(list);
    }
    var files = renderFiles(m.attachments);
    if (files) node.appendChild(files);

    if (m.delivery === "failed") {
      node.classList.add("msg-failed");
      node.appendChild(
        el("div", {
          className: "msg-error",
          text: "Не доставлено" + (m.delivery_error ? ": " + m.delivery_error : ""),
          attrs: { role: "note" }
        })
      );
    } else if (m.delivery === "pending" && author === "operator") {
      node.appendChild(el("div", { className: "msg-pending", text: "отправляется…" }));
    }
    return node;
  }

  function messageSignature(m) {
    return [m.text, m.delivery, m.delivery_error, m.author_name].join("\u0001");
  }

  /**
   * Keeps a log element in step with a message list: new ones appended, changed ones
   * (delivery status) replaced, the scroll kept at the bottom when it was there.
   */
  function MessageLog(container) {
    this.container = container;
    this.nodes = new Map();
    this.signatures = new Map();
  }

  MessageLog.prototype.reset = function () {
    clear(this.container);
    this.nodes = new Map();
    this.signatures = new Map();
  };

  MessageLog.prototype.update = function (messages, context) {
    var box = this.container;
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40 || this.nodes.size === 0;
    var self = this;
    var added = 0;
    messages.forEach(function (m) {
      var key = String(m.id);
      var sig = messageSignature(m);
      var existing = self.nodes.get(key);
      if (existing) {
        if (self.signatures.get(key) !== sig) {
          var fresh = renderMessage(m, context);
          box.replaceChild(fresh, existing);
          self.nodes.set(key, fresh);
          self.signatures.set(key, sig);
        }
        return;
      }
      var node = renderMessage(m, context);
      // Keep id order even if an older message shows up late.
      var before = null;
      var idNum = Number(m.id);
      for (var child = box.lastElementChild; child; child = child.previousElementSibling) {
        if (Number(child.getAttribute("data-id")) < idNum) break;
        before = child;
      }
      box.insertBefore(node, before);
      self.nodes.set(key, node);
      self.signatures.set(key, sig);
      added += 1;
    });
    if (added && atBottom) box.scrollTop = box.scrollHeight;
    return added;
  };

  /** A template as a suggestion line (the desk's list and the templates page's preview). */
  function templateOption(t, props) {
    var p = props || {};
    p.className = "suggest-item";
    return el("li", p, [
      el("span", { className: "suggest-code", text: "/" + (t.code || "") }),
      el("span", { className: "suggest-title", text: t.title || "" }),
      t.category ? el("span", { className: "suggest-cat", text: t.category }) : null,
      el("span", { className: "suggest-scope", text: t.shared ? "общий" : "личный" }),
      el("span", { className: "suggest-text", text: t.text || "" })
    ]);
  }

  // ------------------------------------------------------------------ live socket

  /**
   * The workspace WebSocket: reconnects with backoff, pings every 20 s, and calls
   * onOpen() on every connection, the first one included, so the page refetches what
   * it may have missed while no socket listened (also between its first fetch and
   * the first connection).
   */
  function LiveSocket(handlers) {
    this.handlers = handlers || {};
    this.ws = null;
    this.attempt = 0;
    this.pingTimer = null;
    this.retryTimer = null;
    this.closed = false;
  }

  LiveSocket.prototype.url = function () {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + API + "/ws";
  };

  LiveSocket.prototype.connect = function () {
    var self = this;
    if (self.closed) return;
    var ws;
    try {
      ws = new WebSocket(self.url());
    } catch (e) {
      self.scheduleRetry();
      return;
    }
    self.ws = ws;
    var opened = false;
    ws.onopen = function () {
      opened = true;
      self.attempt = 0;
      self.startPing();
      if (self.handlers.onState) self.handlers.onState("open");
      if (self.handlers.onOpen) self.handlers.onOpen();
    };
    ws.onmessage = function (ev) {
      var msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      if (msg.type === "pong" || msg.type === "hello") return;
      if (self.handlers.onEvent) self.handlers.onEvent(msg.type, msg.data || {});
    };
    ws.onclose = function (ev) {
      self.stopPing();
      if (self.ws === ws) self.ws = null;
      if (self.closed) return;
      if (self.handlers.onState) self.handlers.onState("closed");
      if (!opened || ev.code === 4401) {
        // Signed out: the server turns the socket away before the handshake (which the
        // browser only reports as 1006) or ends it with 4401. Ask the API, whose 401
        // leads to the sign-in page.
        api("GET", "/me").catch(function () {});
      }
      self.scheduleRetry();
    };
    ws.onerror = function () {
      /* onclose follows */
    };
  };

  LiveSocket.prototype.scheduleRetry = function () {
    var self = this;
    if (self.retryTimer || self.closed) return;
    var delay = Math.min(30000, 1000 * Math.pow(2, self.attempt)) * (0.75 + Math.random() * 0.5);
    self.attempt += 1;
    self.retryTimer = setTimeout(function () {
      self.retryTimer = null;
      self.connect();
    }, delay);
  };

  LiveSocket.prototype.startPing = function () {
    var self = this;
    self.stopPing();
    self.pingTimer = setInterval(function () {
      self.send({ type: "ping" });
    }, 20000);
  };

  LiveSocket.prototype.stopPing = function () {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  };

  LiveSocket.prototype.send = function (obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      try {
        this.ws.send(JSON.stringify(obj));
      } catch (e) {
        /* the close handler reconnects */
      }
    }
  };

  LiveSocket.prototype.close = function () {
    this.closed = true;
    this.stopPing();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
  };

  // ------------------------------------------------------------------ header (all signed-in pages)

  var banner = $("banner");

  function setBanner(text, kind) {
    if (!banner) return;
    if (!text) {
      banner.hidden = true;
      banner.textContent = "";
      return;
    }
    banner.textContent = text;
    banner.className = "banner" + (kind ? " banner-" + kind : "");
    banner.hidden = false;
  }

  function onConnectionState(state) {
    if (state === "open") setBanner("");
    else setBanner("Нет связи с сервером — переподключаемся…", "warn");
  }

  async function logout() {
    try {
      await api("POST", "/logout", {}, { noRedirect: true });
    } catch (e) {
      /* signed out already, or the server is away: the login page sorts it out */
    }
    location.assign("/operator/login");
  }

  function setupLogoutLink() {
    var link = $("logout");
    if (!link) return;
    link.addEventListener("click", function (ev) {
      ev.preventDefault();
      logout();
    });
  }

  var statusSwitch = $("status-switch");

  function showStatus(status) {
    if (!statusSwitch) return;
    statusSwitch.setAttribute("data-status", status);
    Array.prototype.forEach.call(statusSwitch.querySelectorAll("button[data-status]"), function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-status") === status ? "true" : "false");
    });
  }

  function setupStatusSwitch() {
    if (!statusSwitch) return;
    statusSwitch.addEventListener("click", async function (ev) {
      var button = ev.target.closest("button[data-status]");
      if (!button) return;
      var status = button.getAttribute("data-status");
      var previous = statusSwitch.getAttribute("data-status");
      showStatus(status);
      try {
        await api("POST", "/status", { status: status });
        setBanner("");
      } catch (e) {
        showStatus(previous);
        setBanner("Статус не изменён: " + errorText(e), "error");
      }
    });
  }

  // ------------------------------------------------------------------ login / logout pages

  function setupLoginPage() {
    var form = $("login-form");
    if (!form) return;
    var error = $("login-error");
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      setError(error, null);
      var login = $("login").value.trim();
      var password = $("password").value;
      if (!login || !password) {
        setError(error, "Введите логин и пароль.");
        return;
      }
      var submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      try {
        var data = await api("POST", "/login", { login: login, password: password }, { noRedirect: true });
        if (data && data.csrf_token) csrfToken = data.csrf_token;
        var next = form.getAttribute("data-next") || "/operator";
        if (next.charAt(0) !== "/" || next.charAt(1) === "/") next = "/operator";
        location.assign(next);
      } catch (e) {
        submit.disabled = false;
        setError(error, e);
        $("password").select();
      }
    });
  }

  function setupLogoutPage() {
    var form = $("logout-form");
    if (!form) return;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      logout();
    });
  }

  // ------------------------------------------------------------------ the desk

  function Desk() {
    this.me = { id: ME_ID, role: ME_ROLE };
    this.queue = [];
    this.mine = [];
    this.listFetchedAt = 0;
    this.currentId = null;
    this.conversation = null;
    this.openSeq = 0;
    this.cardContactId = null;
    this.unread = new Set();
    this.channelTypes = {};
    this.log = new MessageLog($("log"));
    this.suggest = { items: [], index: -1, mode: null, seq: 0, open: false, pickedValue: null };
    // The conversation being handed on (transfer, return to the bot): its own events are
    // not followed, the pane will not read a conversation that is no longer ours.
    this.leavingId = null;
  }

  Desk.prototype.mineContains = function (id) {
    return this.mine.some(function (c) {
      return c.conversation_id === id;
    });
  };

  Desk.prototype.start = function () {
    var self = this;
    self.refreshLists = serial(function () {
      return self.loadLists();
    });
    self.refreshLater = debounce(self.refreshLists, 120);
    self.refreshConversation = serial(function () {
      return self.loadConversation(false);
    });
    self.refreshConversationLater = debounce(self.refreshConversation, 80);

    setupStatusSwitch();
    self.bindChat();
    self.bindComposer();
    bindAttach(self);
    self.bindDialogs();

    api("GET", "/me")
      .then(function (me) {
        if (!me) return;
        self.me = Object.assign(self.me, me);
        if (me.csrf_token) csrfToken = me.csrf_token;
        if (me.name) $("me-name").textContent = me.name;
        if (me.status) showStatus(me.status);
      })
      .catch(function () {});

    self.refreshLists();
    var fromHash = /^#c(\d+)$/.exec(location.hash);
    if (fromHash) self.open(Number(fromHash[1]));

    setInterval(function () {
      self.tick();
    }, 1000);
    // A safety net for events missed between reconnects.
    setInterval(function () {
      self.refreshLists();
    }, 60000);

    self.socket = new LiveSocket({
      onState: onConnectionState,
      onOpen: function () {
        self.refreshLists();
        if (self.currentId) self.refreshConversation();
      },
      onEvent: function (type, data) {
        self.onEvent(type, data);
      }
    });
    self.socket.connect();
  };

  Desk.prototype.onEvent = function (type, data) {
    var convId = typeof data.conversation_id === "number" ? data.conversation_id : null;
    if (type === "operator.status") {
      if (data.user_id === this.me.id && data.status) {
        this.me.status = data.status;
        showStatus(data.status);
        if (data.auto && data.status === "offline") setBanner("Статус сменился на «Не в сети».", "warn");
      }
      return;
    }
    if (convId !== null && convId === this.leavingId) {
      this.refreshLater();
      return;
    }
    if (convId !== null && convId === this.currentId && this.movedAway(type, data)) return;
    var written = type === "message.received" || type === "message.sent" || type === "note.added";
    if (written || type === "message.delivered" || type === "message.failed") {
      if (convId !== null && convId === this.currentId) this.refreshConversationLater();
      if (written) {
        if (data.author === "customer" && convId !== null && convId !== this.currentId && this.mineContains(convId)) {
          this.unread.add(convId);
        }
        this.refreshLater();
      }
      return;
    }
    if (type.indexOf("conversation.") === 0) {
      this.refreshLater();
      if (convId !== null && convId === this.currentId) this.refreshConversationLater();
    }
  };

  /**
   * Somebody else moved the open conversation where this operator may not read it (a
   * supervisor reassigned it, a colleague took it from the queue, the customer left the
   * queue): say so and clear the pane instead of asking for it and being refused.
   */
  Desk.prototype.movedAway = function (type, data) {
    if ((RANK[ME_ROLE] || 0) >= RANK.supervisor) return false;
    var me = this.me.id;
    var text = null;
    if ((type === "conversation.assigned" || type === "conversation.transferred") && data.assignee_id !== me) {
      if (data.assignee_id === null || data.assignee_id === undefined) {
        text = data.group ? "Диалог передан группе «" + data.group + "»." : "Диалог передан в очередь.";
      } else {
        text = data.how === "assign" ? "Диалог передан другому оператору." : "Диалог взял другой оператор.";
      }
    } else if (type === "conversation.returned_to_bot") {
      text = "Диалог возвращён боту.";
    } else if (type === "conversation.left_queue") {
      text = "Клиент вышел из очереди: диалог снова ведёт бот.";
    } else if (type === "conversation.closed" && !this.isMine(this.conversation)) {
      text = "Диалог закрыт.";
    }
    if (!text) return false;
    this.leave(text);
    this.refreshLater();
    return true;
  };

  /** Clear the pane after the conversation has gone elsewhere, with a neutral word why. */
  Desk.prototype.leave = function (text) {
    this.currentId = null;
    this.conversation = null;
    this.leavingId = null;
    this.openSeq += 1; // a load still on its way lands nowhere
    this.cardContactId = null;
    this.log.reset();
    this.closeSuggest();
    var box = $("composer");
    box.value = "";
    this.updateBlanks();
    setError($("composer-error"), null);
    show($("chat-body"), false);
    var placeholder = $("chat-placeholder");
    placeholder.textContent = text + " Выберите следующий диалог в списке.";
    placeholder.setAttribute("data-state", "left");
    show(placeholder, true);
    var card = $("card-body");
    clear(card);
    card.className = "muted";
    card.textContent = "Откройте диалог, чтобы увидеть карточку.";
    if (history.replaceState) history.replaceState(null, "", location.pathname + location.search);
    Array.prototype.forEach.call(document.querySelectorAll(".conv-item[aria-current]"), function (li) {
      li.removeAttribute("aria-current");
    });
  };

  /** Hand the open conversation on (``action`` does the request), then clear the pane. */
  Desk.prototype.handOn = async function (action, text) {
    var id = this.currentId;
    if (!id) return false;
    this.leavingId = id;
    try {
      await action(id);
    } catch (e) {
      this.leavingId = null;
      throw e;
    }
    if (this.currentId === id) this.leave(text);
    else this.leavingId = null;
    setBanner("");
    this.refreshLists();
    return true;
  };

  // ---------------------------------------------------------------- lists

  Desk.prototype.loadLists = async function () {
    var results = await Promise.all([api("GET", "/queue"), api("GET", "/conversations?mine=1")]);
    var queue = results[0] || {};
    var mine = results[1] || {};
    this.queue = Array.isArray(queue.conversations) ? queue.conversations : [];
    this.mine = Array.isArray(mine.conversations) ? mine.conversations : [];
    this.listFetchedAt = Date.now();
    var self = this;
    this.queue.concat(this.mine).forEach(function (c) {
      if (c.channel_id && c.channel_type) self.channelTypes[c.channel_id] = c.channel_type;
    });
    this.renderLists(queue);
  };

  Desk.prototype.renderLists = function (queueInfo) {
    var self = this;
    var queueList = $("queue");
    var mineList = $("mine");
    clear(queueList);
    clear(mineList);
    this.queue.forEach(function (c) {
      queueList.appendChild(self.listItem(c, true));
    });
    this.mine.forEach(function (c) {
      mineList.appendChild(self.listItem(c, false));
    });
    var length = typeof queueInfo.length === "number" ? queueInfo.length : this.queue.length;
    $("queue-count").textContent = String(length);
    $("mine-count").textContent = String(this.mine.length);
    show($("queue-empty"), this.queue.length === 0);
    show($("mine-empty"), this.mine.length === 0);
    this.longest = queueInfo.longest_wait_seconds || 0;
    this.tick();
    document.title = (length ? "(" + length + ") " : "") + document.title.replace(/^\(\d+\) /, "");
  };

  Desk.prototype.listItem = function (c, queued) {
    var self = this;
    var id = c.conversation_id;
    var last = c.last_message || {};
    var lastPrefix = last.author === "customer" ? "" : last.author ? authorLabel(last) + ": " : "";
    var wait = el("span", {
      className: "conv-wait",
      attrs: { "data-wait": c.waiting_seconds || 0, title: "Ожидание" }
    });
    if (!c.waiting_seconds && !queued) wait.hidden = true;
    var name = c.contact_name || "Клиент #" + c.contact_id;
    var openBtn = el(
      "button",
      {
        className: "conv-open",
        attrs: { type: "button", "aria-label": "Открыть диалог: " + name }
      },
      [
        el("span", { className: "conv-top" }, [
          el("span", { className: "conv-channel", text: channelLabel(c.channel_type, c.channel_id) }),
          el("span", { className: "conv-name", text: name }),
          wait
        ]),
        el("span", { className: "conv-last", text: last.text ? lastPrefix + last.text : "—" }),
        c.group ? el("span", { className: "conv-group", text: "Группа: " + c.group }) : null
      ]
    );
    openBtn.addEventListener("click", function () {
      self.open(id);
    });
    var item = el(
      "li",
      {
        className: "conv-item" + (self.unread.has(id) ? " conv-unread" : ""),
        attrs: { "data-id": id, "aria-current": id === self.currentId ? "true" : null }
      },
      [openBtn]
    );
    if (queued) {
      var take = el("button", {
        className: "conv-take primary",
        text: "Взять",
        attrs: { type: "button", "aria-label": "Взять диалог: " + name }
      });
      take.addEventListener("click", function () {
        self.take(id, take);
      });
      item.appendChild(take);
    }
    return item;
  };

  Desk.prototype.tick = function () {
    var elapsed = this.listFetchedAt ? (Date.now() - this.listFetchedAt) / 1000 : 0;
    Array.prototype.forEach.call(document.querySelectorAll(".conv-wait"), function (node) {
      var base = Number(node.getAttribute("data-wait")) || 0;
      node.textContent = formatDuration(base + elapsed);
    });
    var longest = $("queue-longest");
    if (longest) {
      longest.textContent = this.queue.length
        ? "Дольше всех ждёт: " + formatDuration((this.longest || 0) + elapsed)
        : "";
    }
  };

  Desk.prototype.take = async function (id, button) {
    if (button) button.disabled = true;
    try {
      await api("POST", "/conversations/" + id + "/take", {});
      setBanner("");
      await this.refreshLists();
      await this.open(id);
    } catch (e) {
      if (button) button.disabled = false;
      setBanner(errorText(e), "error");
      this.refreshLists();
    }
  };

  // ---------------------------------------------------------------- the conversation

  Desk.prototype.open = async function (id) {
    this.currentId = id;
    this.unread.delete(id);
    if (history.replaceState) history.replaceState(null, "", "#c" + id);
    Array.prototype.forEach.call(document.querySelectorAll(".conv-item"), function (li) {
      if (Number(li.getAttribute("data-id")) === id) {
        li.setAttribute("aria-current", "true");
        li.classList.remove("conv-unread");
      } else li.removeAttribute("aria-current");
    });
    this.log.reset();
    this.closeSuggest();
    setError($("composer-error"), null);
    $("chat-placeholder").removeAttribute("data-state");
    show($("chat-placeholder"), false);
    show($("chat-body"), true);
    $("chat-title").textContent = "Загрузка…";
    $("chat-sub").textContent = "";
    await this.loadConversation(true);
  };

  Desk.prototype.loadConversation = async function (first) {
    var id = this.currentId;
    if (!id) return;
    var seq = ++this.openSeq;
    var data;
    try {
      data = await api("GET", "/conversations/" + id);
    } catch (e) {
      if (seq !== this.openSeq || id !== this.currentId) return;
      if (e.status === 403 || e.status === 404) {
        // Moved on while this page was not listening (a reconnect): not an error of ours.
        this.leave(e.status === 404 ? "Диалог не найден." : "Диалог ведёт другой оператор или он закрыт.");
        return;
      }
      $("chat-title").textContent = "Диалог недоступен";
      $("chat-sub").textContent = errorText(e);
      this.setActions(null);
      return;
    }
    if (seq !== this.openSeq || id !== this.currentId || !data) return;
    var conv = data.conversation || {};
    var messages = Array.isArray(data.messages) ? data.messages : [];
    if (conv.channel_id && conv.channel_type) this.channelTypes[conv.channel_id] = conv.channel_type;
    this.conversation = conv;

    var name = conv.contact_name || "Клиент #" + conv.contact_id;
    $("chat-title").textContent = name;
    var sub = [channelLabel(conv.channel_type || this.channelTypes[conv.channel_id], conv.channel_id)];
    sub.push(CONV_STATUS_LABELS[conv.status] || conv.status || "");
    if (conv.assignee && conv.assignee.name) sub.push("ведёт: " + conv.assignee.name);
    if (conv.group) sub.push("группа: " + conv.group);
    if (conv.status === "closed" && conv.resolution) sub.push("итог: " + conv.resolution);
    $("chat-sub").textContent = sub.filter(Boolean).join(" · ");

    this.log.update(messages, { channelTypes: this.channelTypes, mainChannel: conv.channel_id });
    this.setActions(conv);
    if (first || this.cardContactId !== conv.contact_id) this.loadCard(conv.contact_id, conv.id);
    if (first && this.isMine(conv)) $("composer").focus();
  };

  Desk.prototype.isMine = function (conv) {
    return !!(conv && conv.status === "assigned" && conv.assignee && conv.assignee.id === this.me.id);
  };

  Desk.prototype.setActions = function (conv) {
    var mine = this.isMine(conv);
    var canTake = !!(conv && conv.status === "queued");
    show($("btn-take"), canTake);
    ["btn-transfer", "btn-return", "btn-close"].forEach(function (idName) {
      var b = $(idName);
      b.disabled = !mine;
      b.hidden = !mine;
    });
    var form = $("composer-form");
    form.hidden = !mine;
    $("composer").disabled = !mine;
    this.updateBlanks();
    show($("readonly-note"), !!conv && !mine);
  };

  Desk.prototype.bindChat = function () {
    var self = this;
    $("btn-take").addEventListener("click", function () {
      if (self.currentId) self.take(self.currentId, $("btn-take"));
    });
    $("btn-return").addEventListener("click", async function () {
      if (!self.currentId) return;
      var sure = await confirmInPage({
        title: "Вернуть диалог боту?",
        text: "Клиент снова увидит меню бота, диалог уйдёт из ваших.",
        ok: "Вернуть боту"
      });
      if (!sure || !self.currentId) return;
      try {
        await self.handOn(function (id) {
          return api("POST", "/conversations/" + id + "/return", {});
        }, "Диалог возвращён боту.");
      } catch (e) {
        setBanner(errorText(e), "error");
      }
    });
  };

  // ---------------------------------------------------------------- customer card

  function cardRow(label, value) {
    if (value === null || value === undefined || value === "") return null;
    return el("div", { className: "card-row" }, [
      el("span", { className: "card-label", text: label }),
      el("span", { className: "card-value", text: String(value) })
    ]);
  }

  function renderCard(card) {
    var body = el("div", { className: "card-body" });
    var contact = card.contact || {};
    body.appendChild(
      el("section", { className: "card-section" }, [
        el("h3", { text: contact.name || "Без имени" }),
        cardRow("Телефон", contact.phone || "не указан"),
        cardRow("Метки", Array.isArray(card.tags) ? card.tags.join(", ") : "")
      ])
    );

    var identities = Array.isArray(card.identities) ? card.identities : [];
    if (identities.length) {
      body.appendChild(
        el("section", { className: "card-section" }, [
          el("h4", { text: "Каналы" }),
          el(
            "ul",
            { className: "card-list" },
            identities.map(function (i) {
              var label = channelLabel(i.channel_type, i.channel_id);
              var bits = [label];
              if (i.display_name) bits.push(i.display_name);
              if (i.external_id) bits.push(i.external_id);
              return el("li", { text: bits.join(" · ") });
            })
          )
        ])
      );
    }

    var accounts = Array.isArray(card.accounts) ? card.accounts : [];
    var accSection = el("section", { className: "card-section" }, [el("h4", { text: "Лицевые счета" })]);
    if (!accounts.length) accSection.appendChild(el("p", { className: "muted", text: "Не привязаны" }));
    accounts.forEach(function (a) {
      var box = el("div", { className: "card-account", attrs: { "data-account": a.number } }, [
        el("div", { className: "card-account-number", text: "№ " + (a.number || "") })
      ]);
      if (a.status === "unavailable") box.appendChild(el("p", { className: "warn", text: "Биллинг не ответил" }));
      else if (a.status === "not_found") box.appendChild(el("p", { className: "muted", text: "Нет в биллинге" }));
      [
        cardRow("Владелец", a.holder),
        cardRow("Адрес", a.address),
        cardRow("Тариф", a.plan_title || a.plan),
        cardRow("Баланс", a.balance_text || null),
        a.source === "crm" ? cardRow("Источник", "CRM") : null
      ].forEach(function (r) {
        if (r) box.appendChild(r);
      });
      var r = a.readings;
      if (r && r.zones) {
        var titles = r.titles || {};
        var zones = Object.keys(r.zones).map(function (k) {
          return (titles[k] || k) + ": " + String(r.zones[k]).replace(".", ",") + " кВт·ч";
        });
        box.appendChild(cardRow("Показания", zones.join(", ")));
        if (r.date) box.appendChild(cardRow("Переданы", r.date_text || formatDay(r.date)));
      } else if (a.status === "ok") {
        box.appendChild(cardRow("Показания", "не передавались"));
      }
      accSection.appendChild(box);
    });
    body.appendChild(accSection);

    var crm = card.crm || {};
    var crmSection = el("section", { className: "card-section" }, [el("h4", { text: "CRM" })]);
    if (crm.status === "ok" && crm.person) {
      var p = crm.person;
      [
        cardRow("ФИО", p.name),
        cardRow("Телефоны", Array.isArray(p.phones) ? p.phones.join(", ") : p.phones),
        cardRow("Почта", p.email),
        cardRow("Счета", Array.isArray(p.accounts) ? p.accounts.join(", ") : p.accounts),
        cardRow("Сегмент", p.segment),
        cardRow("Заметка", p.note)
      ].forEach(function (row) {
        if (row) crmSection.appendChild(row);
      });
    } else {
      crmSection.appendChild(
        el("p", {
          className: crm.status === "unavailable" ? "warn" : "muted",
          text: crm.message || "Нет данных"
        })
      );
    }
    body.appendChild(crmSection);
    return body;
  }

  Desk.prototype.loadCard = async function (contactId, convId) {
    var target = $("card-body");
    this.cardContactId = contactId;
    if (!contactId) return;
    clear(target);
    target.className = "muted";
    target.textContent = "Загрузка…";
    try {
      var card = await api(
        "GET",
        "/contacts/" + contactId + "/card" + (convId ? "?conversation_id=" + convId : "")
      );
      if (this.cardContactId !== contactId) return;
      clear(target);
      target.className = "";
      target.appendChild(renderCard(card || {}));
    } catch (e) {
      if (this.cardContactId !== contactId) return;
      target.className = "muted";
      target.textContent = "Карточка недоступна: " + errorText(e);
    }
  };

  // ---------------------------------------------------------------- composer + templates

  Desk.prototype.bindComposer = function () {
    var self = this;
    var box = $("composer");
    var form = $("composer-form");
    var runSuggest = debounce(function () {
      self.fetchSuggestions();
    }, 150);
    box.addEventListener("input", function () {
      self.suggest.pickedValue = null;
      setError($("composer-error"), null);
      self.updateBlanks();
      runSuggest();
    });
    box.addEventListener("scroll", function () {
      $("composer-mirror").scrollTop = box.scrollTop;
    });
    box.addEventListener("keydown", function (ev) {
      if (ev.isComposing) return; // Enter ends an input method's composition
      var s = self.suggest;
      if (s.open) {
        if (ev.key === "ArrowDown") {
          ev.preventDefault();
          self.moveSuggest(1);
          return;
        }
        if (ev.key === "ArrowUp") {
          ev.preventDefault();
          self.moveSuggest(-1);
          return;
        }
        if (ev.key === "Escape") {
          ev.preventDefault();
          self.closeSuggest();
          return;
        }
        if ((ev.key === "Enter" || ev.key === "Tab") && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey && !ev.altKey) {
          if (s.index >= 0) {
            ev.preventDefault();
            self.pickSuggestion(s.index);
            return;
          }
        }
      }
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        self.send();
      }
    });
    box.addEventListener("blur", function () {
      // Let a click on a suggestion land first.
      setTimeout(function () {
        if (document.activeElement !== box) self.closeSuggest();
      }, 150);
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      self.send();
    });
    $("suggest").addEventListener("mousedown", function (ev) {
      ev.preventDefault(); // keep focus in the textarea
      var li = ev.target.closest("li[data-index]");
      if (li) self.pickSuggestion(Number(li.getAttribute("data-index")));
    });
  };

  /** What to ask the suggest API for, from the text before the caret. */
  Desk.prototype.suggestQuery = function () {
    var box = $("composer");
    var value = box.value;
    var caret = box.selectionStart === null ? value.length : box.selectionStart;
    var before = value.slice(0, caret);
    var slash = /(^|\s)\/([^\s/]*)$/.exec(before);
    if (slash) {
      var start = caret - slash[2].length - 1;
      var end = caret;
      var tail = /^[^\s]*/.exec(value.slice(caret));
      if (tail) end += tail[0].length;
      return { mode: "slash", q: "/" + slash[2], start: start, end: end };
    }
    var text = value.trim();
    if (text.length >= 3 && text.length <= 80 && text.indexOf("\n") === -1) {
      return { mode: "words", q: text, start: 0, end: value.length };
    }
    return null;
  };

  Desk.prototype.fetchSuggestions = async function () {
    var q = this.suggestQuery();
    var s = this.suggest;
    var seq = ++s.seq;
    if ($("composer").value === s.pickedValue) return; // just filled from a template
    if (!q || !this.currentId) {
      this.closeSuggest();
      return;
    }
    var data;
    try {
      // "/" alone lists every template (the list scrolls); words get the best few.
      var limit = q.mode === "slash" ? 50 : 8;
      data = await api(
        "GET",
        "/templates/suggest?q=" + encodeURIComponent(q.q) + "&conversation_id=" + this.currentId + "&limit=" + limit
      );
    } catch (e) {
      if (seq === s.seq) this.closeSuggest();
      return;
    }
    if (seq !== s.seq) return; // a newer keystroke won
    var now = this.suggestQuery();
    if (!now || now.q !== q.q) return; // the text changed meanwhile (or was sent)
    var items = data && Array.isArray(data.suggestions) ? data.suggestions : [];
    if (!items.length) {
      this.closeSuggest();
      return;
    }
    s.items = items;
    s.mode = q.mode;
    // After "/" the first match is ready for Enter; for plain words the operator
    // opts in with ↓ so Enter keeps making new lines.
    s.index = q.mode === "slash" ? 0 : -1;
    this.renderSuggest();
  };

  Desk.prototype.renderSuggest = function () {
    var s = this.suggest;
    var list = $("suggest");
    clear(list);
    s.items.forEach(function (t, i) {
      list.appendChild(
        templateOption(t, {
          attrs: {
            role: "option",
            id: "suggest-" + i,
            "data-index": i,
            "data-code": t.code,
            "aria-selected": i === s.index ? "true" : "false"
          }
        })
      );
    });
    list.hidden = false;
    s.open = true;
    var box = $("composer");
    box.setAttribute("aria-expanded", "true");
    if (s.index >= 0) box.setAttribute("aria-activedescendant", "suggest-" + s.index);
    else box.removeAttribute("aria-activedescendant");
  };

  Desk.prototype.moveSuggest = function (delta) {
    var s = this.suggest;
    if (!s.items.length) return;
    var n = s.items.length;
    s.index = s.index < 0 ? (delta > 0 ? 0 : n - 1) : (s.index + delta + n) % n;
    var list = $("suggest");
    Array.prototype.forEach.call(list.children, function (li, i) {
      li.setAttribute("aria-selected", i === s.index ? "true" : "false");
    });
    var active = list.children[s.index];
    if (active && active.scrollIntoView) active.scrollIntoView({ block: "nearest" });
    $("composer").setAttribute("aria-activedescendant", "suggest-" + s.index);
  };

  Desk.prototype.closeSuggest = function () {
    var s = this.suggest;
    s.seq += 1;
    s.items = [];
    s.index = -1;
    s.open = false;
    var list = $("suggest");
    if (list) {
      clear(list);
      list.hidden = true;
    }
    var box = $("composer");
    if (box) {
      box.setAttribute("aria-expanded", "false");
      box.removeAttribute("aria-activedescendant");
    }
  };

  Desk.prototype.pickSuggestion = function (index) {
    var s = this.suggest;
    var t = s.items[index];
    if (!t) return;
    // What to replace comes from the text as it is now: keys typed since the list was
    // asked for ("/pok" → "/poka") are replaced too, not left behind the template.
    var q = this.suggestQuery();
    if (!q || q.mode !== s.mode) {
      this.closeSuggest();
      return;
    }
    var box = $("composer");
    var text = String(t.text || "");
    var value = box.value;
    box.value = value.slice(0, q.start) + text + value.slice(q.end);
    s.pickedValue = box.value;
    this.closeSuggest();
    box.focus();
    // A blank the template could not fill is selected: typing replaces it.
    var blank = findBlanks(text)[0];
    if (blank) box.setSelectionRange(q.start + blank.start, q.start + blank.end);
    else box.setSelectionRange(q.start + text.length, q.start + text.length);
    this.updateBlanks();
  };

  /**
   * Marks a template's unfilled blanks in the reply box (a mirror behind the transparent
   * textarea holds the same text with the blanks in <mark>), lists them under it and
   * keeps «Отправить» disabled while any is left; the server refuses them too.
   */
  Desk.prototype.updateBlanks = function () {
    var box = $("composer");
    var mirror = $("composer-mirror");
    var note = $("composer-blanks");
    var value = box.value;
    var blanks = findBlanks(value);
    clear(mirror);
    var at = 0;
    blanks.forEach(function (b) {
      mirror.appendChild(document.createTextNode(value.slice(at, b.start)));
      mirror.appendChild(el("mark", { text: b.text }));
      at = b.end;
    });
    // A trailing newline would collapse in the mirror and shift the last line.
    mirror.appendChild(document.createTextNode(value.slice(at) + "\u200b"));
    mirror.scrollTop = box.scrollTop;
    var names = blanks.map(function (b) {
      return b.text;
    });
    var unique = names.filter(function (n, i) {
      return names.indexOf(n) === i;
    });
    if (unique.length) {
      note.textContent = "Замените выделенное перед отправкой: " + unique.join(", ");
      box.setAttribute("aria-invalid", "true");
      box.setAttribute("aria-describedby", "composer-blanks");
    } else {
      note.textContent = "";
      box.removeAttribute("aria-invalid");
      box.removeAttribute("aria-describedby");
    }
    note.hidden = !unique.length;
    $("btn-send").disabled = !this.isMine(this.conversation) || unique.length > 0;
    return unique;
  };

  Desk.prototype.send = async function () {
    var box = $("composer");
    var text = box.value.trim();
    var id = this.currentId;
    if (!text || !id || box.disabled) return;
    if (this.updateBlanks().length) {
      setError($("composer-error"), ERROR_TEXTS.unfilled_placeholder);
      var first = findBlanks(box.value)[0];
      box.focus();
      if (first) box.setSelectionRange(first.start, first.end);
      return;
    }
    this.closeSuggest();
    var button = $("btn-send");
    button.disabled = true;
    setError($("composer-error"), null);
    try {
      await api("POST", "/conversations/" + id + "/messages", { text: text });
      if (this.currentId === id && box.value.trim() === text) box.value = "";
      this.refreshConversation();
    } catch (e) {
      setError($("composer-error"), "Не отправлено: " + errorText(e));
    } finally {
      this.updateBlanks();
      box.focus();
    }
  };

  // ---------------------------------------------------------------- transfer / close dialogs

  Desk.prototype.bindDialogs = function () {
    var self = this;
    var transfer = $("transfer-dialog");
    var closeDlg = $("close-dialog");

    $("btn-transfer").addEventListener("click", async function () {
      if (!self.currentId) return;
      setError($("transfer-error"), null);
      $("transfer-note").value = "";
      var userSelect = $("transfer-user");
      var groupSelect = $("transfer-group");
      clear(userSelect);
      clear(groupSelect);
      userSelect.appendChild(el("option", { text: "Загрузка…", attrs: { value: "" } }));
      transfer.showModal();
      try {
        // Everyone but me, and every group of the team (mine included).
        var c = await api("GET", "/colleagues");
        var others = (c.operators || []).slice().sort(byStatusThenName);
        var groups = c.groups || [];
        clear(userSelect);
        // Only a colleague on the line can be given the chat (the customer is told they
        // joined); the others are listed, greyed out, so nobody wonders where they went.
        var available = others.filter(function (p) {
          return p.available;
        });
        if (!available.length) {
          userSelect.appendChild(el("option", { text: "Сейчас на линии никого — передайте группе", attrs: { value: "" } }));
        }
        others.forEach(function (p) {
          var label = p.name + " — " + (STATUS_LABELS[p.status] || p.status || "");
          if (p.available && typeof p.load === "number") label += " (" + p.load + " из " + p.max_chats + ")";
          if (!p.available) label += ", передать нельзя";
          userSelect.appendChild(
            el("option", { text: label, attrs: { value: p.id, "data-name": p.name, disabled: !p.available } })
          );
        });
        if (!available.length && groups.length) transfer.querySelector('input[value="group"]').checked = true;
        if (!groups.length) groupSelect.appendChild(el("option", { text: "Групп нет", attrs: { value: "" } }));
        groups.forEach(function (g) {
          groupSelect.appendChild(el("option", { text: g, attrs: { value: g } }));
        });
      } catch (e) {
        clear(userSelect);
        setError($("transfer-error"), "Список коллег недоступен: " + errorText(e));
      }
    });
    // Choosing from a list also picks its radio button.
    $("transfer-user").addEventListener("change", function () {
      transfer.querySelector('input[value="user"]').checked = true;
    });
    $("transfer-group").addEventListener("change", function () {
      transfer.querySelector('input[value="group"]').checked = true;
    });
    $("transfer-cancel").addEventListener("click", function () {
      transfer.close();
    });
    $("transfer-form").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var note = $("transfer-note").value.trim();
      var target = transfer.querySelector('input[name="target"]:checked').value;
      var body = { note: note };
      var told;
      if (target === "group") {
        var group = $("transfer-group").value;
        if (!group) return setError($("transfer-error"), "Выберите группу.");
        body.group = group;
        told = "Диалог передан группе «" + group + "».";
      } else {
        var userSelect = $("transfer-user");
        var userId = Number(userSelect.value);
        if (!userId) return setError($("transfer-error"), "Выберите оператора на линии.");
        body.to_user_id = userId;
        var option = userSelect.options[userSelect.selectedIndex];
        told = "Диалог передан: " + ((option && option.getAttribute("data-name")) || "коллеге") + ".";
      }
      if (!note) {
        setError($("transfer-error"), ERROR_TEXTS.note);
        $("transfer-note").focus();
        return;
      }
      var submit = $("transfer-submit");
      submit.disabled = true;
      try {
        await self.handOn(function (id) {
          return api("POST", "/conversations/" + id + "/transfer", body);
        }, told);
        transfer.close();
      } catch (e) {
        setError($("transfer-error"), errorText(e));
      } finally {
        submit.disabled = false;
      }
    });

    $("btn-close").addEventListener("click", function () {
      if (!self.currentId) return;
      setError($("close-error"), null);
      $("close-resolution").value = "";
      closeDlg.showModal();
      $("close-resolution").focus();
    });
    $("close-cancel").addEventListener("click", function () {
      closeDlg.close();
    });
    $("close-form").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var resolution = $("close-resolution").value.trim();
      if (!resolution) {
        setError($("close-error"), ERROR_TEXTS.resolution);
        return;
      }
      var submit = $("close-submit");
      submit.disabled = true;
      try {
        await api("POST", "/conversations/" + self.currentId + "/close", { resolution: resolution });
        closeDlg.close();
        self.refreshLists();
        self.refreshConversation();
      } catch (e) {
        setError($("close-error"), errorText(e));
      } finally {
        submit.disabled = false;
      }
    });
  };

  // ------------------------------------------------------------------ shared with supervisor.js

  window.AbonentDesk = {
    api: api,
    el: el,
    $: $,
    clear: clear,
    show: show,
    setError: setError,
    setBanner: setBanner,
    errorText: errorText,
    formatDuration: formatDuration,
    formatTime: formatTime,
    channelLabel: channelLabel,
    debounce: debounce,
    serial: serial,
    byStatusThenName: byStatusThenName,
    templateOption: templateOption,
    confirmInPage: confirmInPage,
    formatDay: formatDay,
    MessageLog: MessageLog,
    LiveSocket: LiveSocket,
    onConnectionState: onConnectionState,
    STATUS_LABELS: STATUS_LABELS,
    CONV_STATUS_LABELS: CONV_STATUS_LABELS,
    me: { id: ME_ID, role: ME_ROLE, rank: RANK[ME_ROLE] || 0 }
  };

  // ------------------------------------------------------------------ boot

  setupLogoutLink();
  setupLoginPage();
  setupLogoutPage();
  if (document.body.classList.contains("page-workspace")) {
    window.AbonentDesk.desk = new Desk();
    window.AbonentDesk.desk.start();
  }
})();
