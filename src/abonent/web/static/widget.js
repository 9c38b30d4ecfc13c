/*!
 * Abonent website chat widget.
 *
 * Embed with one tag on any page, on any origin:
 *   <script src="https://chat.example.ru/widget.js" async></script>
 *
 * The API base is the directory the script was loaded from (".../widget.js" or
 * ".../static/widget.js" -> "..."); a data-api-base="https://..." attribute on the
 * tag overrides it. Everything renders inside an open Shadow DOM, so the host
 * page's CSS cannot reach it. Message text is only ever set through textContent.
 *
 * Page API: window.AbonentWidget.open(), .openChat(), .close(), .toggle().
 */
(function () {
  "use strict";

  if (window.AbonentWidget && window.AbonentWidget.__loaded) return;

  var API_PATH = "/api/client/v1";
  var LONG_POLL_WAIT = 25; // seconds, server maximum is 30
  var MAX_TEXT = 4096;
  var WS_BACKOFF_MIN = 1000;
  var WS_BACKOFF_MAX = 30000;

  var T = {
    help: "Помощь",
    chat: "Онлайн-чат",
    chooseChannel: "Выберите удобный способ связи:",
    chatHint: "Ответим прямо здесь, на сайте",
    messengersHeading: "Напишите нам в мессенджер",
    close: "Закрыть",
    back: "Назад",
    send: "Отправить",
    inputLabel: "Сообщение",
    placeholder: "Введите сообщение…",
    sending: "Отправляется…",
    notSent: "Не отправлено.",
    tooOften: "Слишком часто, подождите немного",
    retry: "Повторить",
    discard: "Удалить",
    connecting: "Подключаемся к чату…",
    startFailed: "Не удалось начать чат. Проверьте подключение к интернету.",
    offline: "Нет соединения. Переподключаемся…",
    operator: "Оператор",
    bot: "Бот",
    you: "Вы",
    messages: "Сообщения чата",
    answers: "Варианты ответа",
    unread: function (n) {
      return n + " " + plural(n, "новое сообщение", "новых сообщения", "новых сообщений");
    },
    opensInNewTab: "(откроется в новой вкладке)",
    attach: "Прикрепить фото или PDF",
    removeFile: "Убрать файл",
    uploading: function (pct) { return "Загружается… " + pct + "%"; },
    fileTooLarge: function (mb) {
      return "Файл слишком большой: можно отправить до " + mb + " МБ. Уменьшите фото или сожмите PDF.";
    },
    fileWrongType: "Такой файл не подходит: отправьте фото (JPEG, PNG, WebP, HEIC) или документ PDF.",
    fileEmpty: "Файл пустой — выберите другой.",
    fileTooManyPixels: "Фото слишком большого разрешения — уменьшите его и отправьте снова.",
    fileFailed: "Не удалось отправить файл. Проверьте подключение и попробуйте ещё раз.",
    fileUnavailable: "Файл пока недоступен.",
    openFull: "Открыть фото целиком",
    download: "Скачать",
    photo: "Фото",
    dropHere: "Отпустите, чтобы прикрепить файл"
  };

  var DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
  var FILE_ACCEPT = "image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif,application/pdf";
  // Checked here only to answer at once; the server reads the content and decides.
  var FILE_TYPES = /^(image\/(jpeg|png|webp|heic|heif)|application\/pdf)$/;
  var FILE_NAMES = /\.(jpe?g|png|webp|heic|heif|pdf)$/i;

  // ---------------------------------------------------------------- helpers

  function plural(n, one, few, many) {
    var m10 = n % 10, m100 = n % 100;
    if (m10 === 1 && m100 !== 11) return one;
    if (m10 >= 2 && m10 <= 4 && (m100 < 12 || m100 > 14)) return few;
    return many;
  }

  function findScript() {
    var current = document.currentScript;
    if (current && current.src) return current;
    var scripts = document.getElementsByTagName("script");
    for (var i = scripts.length - 1; i >= 0; i--) {
      var s = scripts[i];
      if (s.src && /\/widget\.js(?:[?#]|$)/.test(s.src)) return s;
    }
    return null;
  }

  function resolveApiBase(script) {
    var explicit = script && script.getAttribute("data-api-base");
    try {
      if (explicit) {
        var e = new URL(explicit, location.href);
        return e.origin + e.pathname.replace(/\/+$/, "");
      }
      if (script && script.src) {
        var u = new URL(script.src, location.href);
        var path = u.pathname.replace(/\/(?:static\/)?widget\.js$/, "");
        if (path === u.pathname) path = u.pathname.replace(/\/[^\/]*$/, "");
        return u.origin + path.replace(/\/+$/, "");
      }
    } catch (err) { /* fall through */ }
    return location.origin;
  }

  function makeStore(kind) {
    var backing = null;
    var memory = {};
    try {
      backing = window[kind];
      backing.setItem("__abonent_probe", "1");
      backing.removeItem("__abonent_probe");
    } catch (err) {
      backing = null;
    }
    return {
      get: function (key) {
        var raw = null;
        try { raw = backing ? backing.getItem(key) : memory[key]; } catch (err) { raw = memory[key]; }
        if (raw == null) return null;
        try { return JSON.parse(raw); } catch (err) { return null; }
      },
      set: function (key, value) {
        var raw = JSON.stringify(value);
        memory[key] = raw;
        try { if (backing) backing.setItem(key, raw); } catch (err) { /* quota, privacy mode */ }
      },
      remove: function (key) {
        delete memory[key];
        try { if (backing) backing.removeItem(key); } catch (err) { /* ignore */ }
      }
    };
  }

  function randomId() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try { return c.randomUUID(); } catch (err) { /* insecure context */ }
    }
    var bytes = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(bytes);
    else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    var hex = "";
    for (var j = 0; j < 16; j++) hex += (bytes[j] + 0x100).toString(16).slice(1);
    return hex;
  }

  function sleep(ms, signal) {
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", function () { clearTimeout(timer); resolve(); });
    });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      for (var key in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
        var value = attrs[key];
        if (value == null || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key.slice(0, 2) === "on" && typeof value === "function") {
          node.addEventListener(key.slice(2), value);
        } else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    if (children) {
      for (var i = 0; i < children.length; i++) {
        var child = children[i];
        if (child == null) continue;
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    }
    return node;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  // Icons as path data only: built with createElementNS, never parsed from markup.
  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6 6l12 12M18 6L6 18",
    back: "M15 5l-7 7 7 7",
    send: "M4 12l16-8-6 16-2.5-6.5z",
    clip: "M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9",
    file: "M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5",
    external: "M14 4h6v6M20 4l-9 9M18 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1h5"
  };

  function icon(name, filled) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "20");
    svg.setAttribute("height", "20");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    if (filled) {
      path.setAttribute("fill", "currentColor");
    } else {
      path.setAttribute("fill", "none");
      path.setAttribute("stroke", "currentColor");
      path.setAttribute("stroke-width", "2");
      path.setAttribute("stroke-linecap", "round");
      path.setAttribute("stroke-linejoin", "round");
    }
    svg.appendChild(path);
    return svg;
  }

  var MESSENGERS = {
    telegram: { color: "#229ED9", letter: "T" },
    whatsapp: { color: "#25D366", letter: "W" },
    viber: { color: "#7360F2", letter: "V" },
    vk: { color: "#0077FF", letter: "VK" },
    max: { color: "#5B3DF5", letter: "M" }
  };
  var SAFE_LINK_SCHEMES = /^(?:https?|tg|viber|whatsapp|vk|mailto|tel):/i;

  function safeHref(url, schemes) {
    if (typeof url !== "string") return null;
    var trimmed = url.trim();
    if (!(schemes || SAFE_LINK_SCHEMES).test(trimmed)) return null;
    try {
      var parsed = new URL(trimmed);
      return (schemes || SAFE_LINK_SCHEMES).test(parsed.protocol) ? parsed.href : null;
    } catch (err) {
      return null;
    }
  }

  var URL_RE = /\bhttps?:\/\/[^\s<>"'«»]+/gi;
  var PHONE_RE = /(?:\+7|\b8)[\s\-\u00a0]?\(?\d{3}\)?[\s\-\u00a0]?\d{3}[\s\-\u00a0]?\d{2}[\s\-\u00a0]?\d{2}\b/g;

  /** Append text to a node, turning http(s) URLs and Russian phone numbers into links. */
  function appendRichText(node, text) {
    var tokens = [];
    var m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text))) {
      var raw = m[0].replace(/[.,;:!?)\]]+$/, "");
      tokens.push({ start: m.index, end: m.index + raw.length, kind: "url", value: raw });
    }
    PHONE_RE.lastIndex = 0;
    while ((m = PHONE_RE.exec(text))) {
      var start = m.index, end = m.index + m[0].length;
      // "8..." without any separator is more likely an account number than a phone.
      if (m[0].charAt(0) === "8" && !/[\s\-()\u00a0]/.test(m[0])) continue;
      var overlaps = tokens.some(function (t) { return start < t.end && end > t.start; });
      if (!overlaps) tokens.push({ start: start, end: end, kind: "tel", value: m[0] });
    }
    tokens.sort(function (a, b) { return a.start - b.start; });
    var pos = 0;
    tokens.forEach(function (t) {
      if (t.start > pos) node.appendChild(document.createTextNode(text.slice(pos, t.start)));
      var link = null;
      if (t.kind === "url") {
        var href = safeHref(t.value, /^https?:/i);
        if (href) link = el("a", { href: href, target: "_blank", rel: "noopener noreferrer" });
      } else {
        var digits = t.value.replace(/[^\d+]/g, "");
        link = el("a", { href: "tel:" + digits });
      }
      if (link) {
        link.textContent = t.value;
        node.appendChild(link);
      } else {
        node.appendChild(document.createTextNode(t.value));
      }
      pos = t.end;
    });
    if (pos < text.length) node.appendChild(document.createTextNode(text.slice(pos)));
  }

  function parseTime(value) {
    if (typeof value !== "string" || !value) return null;
    var s = value.replace(" ", "T");
    // A naive timestamp from the server is UTC.
    if (/T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$/.test(s)) s += "Z";
    var d = new Date(s);
    return isNaN(d.getTime()) ? null : d;
  }

  function formatTime(d) {
    var hm = ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
    var now = new Date();
    if (d.toDateString() === now.toDateString()) return hm;
    return ("0" + d.getDate()).slice(-2) + "." + ("0" + (d.getMonth() + 1)).slice(-2) + " " + hm;
  }

  // ---------------------------------------------------------------- setup

  var script = findScript();
  var apiBase = resolveApiBase(script);
  var local = makeStore("localStorage");
  var session = makeStore("sessionStorage");
  var SESSION_KEY = "abonent:" + apiBase + ":session";
  var UI_KEY = "abonent:" + apiBase + ":ui";

  var state = {
    config: null,
    token: null,
    conversationId: null,
    lastId: 0,
    messages: new Map(), // id -> {msg, node}
    pending: [], // optimistic customer messages not yet confirmed by the server
    open: false,
    view: "menu",
    unread: 0,
    connected: true,
    starting: null, // promise of an in-flight conversation creation
    startError: false
  };

  var live = {
    generation: 0,
    ws: null,
    wsOpen: false,
    wsBackoff: WS_BACKOFF_MIN,
    wsTimer: null,
    polling: false,
    pollAbort: null,
    catchingUp: null,
    catchUpAgain: false
  };

  var ui = {};

  // ---------------------------------------------------------------- HTTP

  function HttpError(status, code, message, retryAfter) {
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.message = message;
    // Seconds the server asks to wait (429 Retry-After), or 0.
    this.retryAfter = retryAfter || 0;
  }

  function isRateLimited(err) {
    return err instanceof HttpError && err.status === 429;
  }

  /** How long to wait before retrying a refused request: the server's Retry-After,
   * kept within 1..60 s. */
  function retryDelay(err) {
    var seconds = err && err.retryAfter > 0 ? err.retryAfter : 5;
    return Math.min(60, Math.max(1, seconds)) * 1000;
  }
  HttpError.prototype = Object.create(Error.prototype);

  function request(method, path, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (options.token) headers.Authorization = "Bearer " + options.token;
    var controller = typeof AbortController !== "undefined" ? new AbortController() : null;
    var outer = options.signal;
    if (outer && controller) {
      if (outer.aborted) controller.abort();
      else outer.addEventListener("abort", function () { controller.abort(); });
    }
    var timer = controller ? setTimeout(function () { controller.abort(); }, options.timeout || 15000) : null;
    return fetch(apiBase + API_PATH + path, {
      method: method,
      headers: headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
      mode: "cors",
      credentials: "omit",
      cache: "no-store",
      signal: controller ? controller.signal : undefined
    }).then(function (resp) {
      return resp.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (err) { data = null; }
        if (!resp.ok) {
          var error = data && data.error ? data.error : {};
          var wait = parseInt(resp.headers.get("Retry-After") || "", 10);
          throw new HttpError(resp.status, error.code || null, error.message || "HTTP " + resp.status,
            isNaN(wait) ? 0 : wait);
        }
        setConnected(true);
        return data;
      });
    }).finally(function () {
      if (timer) clearTimeout(timer);
    });
  }

  function isAuthError(err) {
    return err instanceof HttpError && (err.status === 401 || err.status === 403);
  }

  // ---------------------------------------------------------------- persistence

  function saveSession() {
    if (state.token) {
      local.set(SESSION_KEY, { token: state.token, conversation_id: state.conversationId });
    } else {
      local.remove(SESSION_KEY);
    }
  }

  function saveUi() {
    session.set(UI_KEY, {
      open: state.open,
      view: state.view,
      unread: state.unread,
      draft: ui.input ? ui.input.value : ""
    });
  }

  // ---------------------------------------------------------------- DOM

  var CSS = [
    ":host{all:initial}",
    "*,*::before,*::after{box-sizing:border-box}",
    "[hidden]{display:none!important}",
    ".ab-root{--ab-accent:#0b5fc5;--ab-accent-dark:#094c9e;--ab-ink:#1d2433;--ab-muted:#6b7383;",
    "--ab-line:#e3e7ee;--ab-bg:#f4f6fa;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,",
    "'Helvetica Neue',Arial,sans-serif;color:var(--ab-ink);-webkit-font-smoothing:antialiased;",
    "text-align:left;direction:ltr}",
    "button{font:inherit;color:inherit;cursor:pointer}",
    "button:focus-visible,a:focus-visible,textarea:focus-visible{outline:3px solid #ffb200;outline-offset:2px}",
    // launcher
    ".ab-launcher{position:fixed;right:calc(20px + env(safe-area-inset-right,0px));",
    "bottom:calc(20px + env(safe-area-inset-bottom,0px));z-index:2147483000;display:inline-flex;",
    "align-items:center;gap:8px;height:56px;min-width:56px;padding:0 22px 0 18px;border:0;",
    "border-radius:28px;background:var(--ab-accent);color:#fff;font-weight:600;font-size:15px;",
    "letter-spacing:.01em;box-shadow:0 6px 20px rgba(10,30,70,.3);transition:transform .15s,background .15s}",
    ".ab-launcher:hover{background:var(--ab-accent-dark);transform:translateY(-1px)}",
    ".ab-launcher svg{flex:none}",
    ".ab-badge{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;",
    "border-radius:11px;background:#e5322d;color:#fff;font-size:12px;font-weight:700;line-height:22px;",
    "text-align:center;box-shadow:0 0 0 2px #fff}",
    // panel
    ".ab-panel{position:fixed;right:calc(20px + env(safe-area-inset-right,0px));",
    "bottom:calc(88px + env(safe-area-inset-bottom,0px));z-index:2147483001;display:flex;",
    "flex-direction:column;width:380px;max-width:calc(100vw - 40px);height:620px;",
    "max-height:calc(100vh - 112px);background:#fff;border-radius:16px;overflow:hidden;",
    "box-shadow:0 14px 48px rgba(10,30,70,.28);animation:ab-in .18s ease-out}",
    "@keyframes ab-in{from{opacity:0;transform:translateY(12px)}to{opacity:1;transform:none}}",
    ".ab-header{display:flex;align-items:center;gap:6px;min-height:60px;padding:10px 8px 10px 16px;",
    "background:var(--ab-accent);color:#fff;flex:none}",
    ".ab-header-text{flex:1;min-width:0}",
    ".ab-title{margin:0;font-size:16px;font-weight:700;line-height:1.25;white-space:nowrap;",
    "overflow:hidden;text-overflow:ellipsis}",
    ".ab-subtitle{font-size:12px;opacity:.85;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
    ".ab-icon-btn{display:inline-flex;align-items:center;justify-content:center;width:40px;height:40px;",
    "flex:none;border:0;border-radius:50%;background:transparent;color:#fff}",
    ".ab-icon-btn:hover{background:rgba(255,255,255,.16)}",
    ".ab-back{margin-left:-8px}",
    // menu view
    ".ab-menu{flex:1;overflow-y:auto;padding:18px 16px 20px;background:var(--ab-bg)}",
    ".ab-lead{margin:0 0 14px;color:var(--ab-muted)}",
    ".ab-chat-btn{display:flex;align-items:center;gap:12px;width:100%;padding:16px;border:0;",
    "border-radius:12px;background:var(--ab-accent);color:#fff;text-align:left;",
    "box-shadow:0 4px 12px rgba(11,95,197,.25)}",
    ".ab-chat-btn:hover{background:var(--ab-accent-dark)}",
    ".ab-chat-btn-title{display:block;font-size:16px;font-weight:700}",
    ".ab-chat-btn-hint{display:block;font-size:12px;opacity:.85}",
    ".ab-section{margin:20px 0 8px;font-size:12px;font-weight:600;text-transform:uppercase;",
    "letter-spacing:.04em;color:var(--ab-muted)}",
    ".ab-links{list-style:none;margin:0;padding:0;display:grid;gap:8px}",
    ".ab-link{display:flex;align-items:center;gap:12px;padding:12px 14px;border-radius:12px;",
    "background:#fff;border:1px solid var(--ab-line);color:var(--ab-ink);text-decoration:none;font-weight:600}",
    ".ab-link:hover{border-color:var(--ab-accent)}",
    ".ab-link-mark{display:inline-flex;align-items:center;justify-content:center;width:32px;height:32px;",
    "flex:none;border-radius:50%;color:#fff;font-size:13px;font-weight:800;background:#8a94a6}",
    ".ab-link-title{flex:1}",
    ".ab-link svg{color:var(--ab-muted)}",
    ".ab-sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    // chat view
    ".ab-chat{flex:1;display:flex;flex-direction:column;min-height:0;background:var(--ab-bg)}",
    ".ab-banner{padding:6px 12px;background:#fff4d6;color:#6b4b00;font-size:12px;text-align:center;flex:none}",
    ".ab-scroll{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:14px 12px 8px}",
    ".ab-log{display:flex;flex-direction:column;gap:8px}",
    ".ab-msg{display:flex;flex-direction:column;max-width:85%}",
    ".ab-msg--customer{align-self:flex-end;align-items:flex-end}",
    ".ab-msg--bot,.ab-msg--operator{align-self:flex-start;align-items:flex-start}",
    ".ab-msg--system{align-self:center;align-items:center;max-width:92%}",
    ".ab-author{font-size:11px;color:var(--ab-muted);margin:0 10px 2px}",
    ".ab-bubble{padding:8px 12px 6px;border-radius:16px;background:#fff;border:1px solid var(--ab-line);",
    "overflow-wrap:anywhere}",
    ".ab-msg--customer .ab-bubble{background:var(--ab-accent);border-color:var(--ab-accent);color:#fff;",
    "border-bottom-right-radius:4px}",
    ".ab-msg--bot .ab-bubble,.ab-msg--operator .ab-bubble{border-bottom-left-radius:4px}",
    ".ab-msg--operator .ab-bubble{border-color:#b9d3f5}",
    ".ab-msg--system .ab-bubble{background:transparent;border:0;padding:2px 8px;color:var(--ab-muted);",
    "font-size:12px;text-align:center}",
    ".ab-text{white-space:pre-wrap}",
    ".ab-text a{color:inherit;text-decoration:underline}",
    ".ab-msg--bot .ab-text a,.ab-msg--operator .ab-text a{color:var(--ab-accent)}",
    ".ab-time{display:block;margin-top:2px;font-size:10.5px;text-align:right;opacity:.65}",
    ".ab-msg--pending .ab-bubble{opacity:.7}",
    ".ab-status{font-size:11px;color:var(--ab-muted);margin:2px 4px 0;display:flex;gap:8px;align-items:center}",
    ".ab-status--error{color:#c62828}",
    ".ab-status button{border:0;background:none;padding:0;color:var(--ab-accent);text-decoration:underline;font-size:11px}",
    ".ab-chips{display:flex;flex-wrap:wrap;gap:6px;margin:8px 0 4px}",
    ".ab-chip{padding:7px 14px;border:1px solid var(--ab-accent);border-radius:18px;background:#fff;",
    "color:var(--ab-accent);font-size:13.5px;font-weight:600;line-height:1.25;text-align:left}",
    ".ab-chip:hover{background:var(--ab-accent);color:#fff}",
    ".ab-chip:disabled{opacity:.5;cursor:default}",
    ".ab-notice{margin:24px 8px;text-align:center;color:var(--ab-muted)}",
    ".ab-notice button{margin-top:10px;padding:8px 16px;border:0;border-radius:8px;background:var(--ab-accent);color:#fff}",
    ".ab-composer{display:flex;align-items:flex-end;gap:8px;padding:10px 10px 12px;background:#fff;",
    "border-top:1px solid var(--ab-line);flex:none}",
    ".ab-input{flex:1;min-height:40px;max-height:132px;padding:9px 12px;border:1px solid var(--ab-line);",
    "border-radius:20px;resize:none;font:inherit;font-size:15px;line-height:1.35;color:var(--ab-ink);",
    "background:#fff;overflow-y:auto}",
    ".ab-input:focus{border-color:var(--ab-accent);outline:none;box-shadow:0 0 0 3px rgba(11,95,197,.15)}",
    ".ab-send{display:inline-flex;align-items:center;justify-content:center;width:40px;height:40px;flex:none;",
    "border:0;border-radius:50%;background:var(--ab-accent);color:#fff}",
    ".ab-send:hover{background:var(--ab-accent-dark)}",
    ".ab-attach{display:inline-flex;align-items:center;justify-content:center;width:40px;height:40px;flex:none;",
    "border:0;border-radius:50%;background:transparent;color:var(--ab-muted)}",
    ".ab-attach:hover{background:var(--ab-bg);color:var(--ab-accent)}",
    ".ab-tray{display:flex;align-items:center;gap:10px;padding:8px 12px;background:#fff;border-top:1px solid var(--ab-line);flex:none}",
    ".ab-tray img{width:48px;height:48px;object-fit:cover;border-radius:8px;flex:none}",
    ".ab-tray-info{flex:1;min-width:0;font-size:13px}",
    ".ab-tray-name{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-weight:600}",
    ".ab-tray-size{color:var(--ab-muted);font-size:12px}",
    ".ab-tray button{border:0;background:none;color:var(--ab-muted);width:32px;height:32px;border-radius:50%}",
    ".ab-file-error{padding:6px 12px;background:#fdecea;color:#b71c1c;font-size:12.5px;flex:none}",
    ".ab-files{display:flex;flex-direction:column;gap:6px;margin-bottom:4px}",
    ".ab-thumb{display:block;padding:0;border:0;background:none;border-radius:10px;overflow:hidden;max-width:220px}",
    ".ab-thumb img{display:block;max-width:220px;max-height:220px;border-radius:10px}",
    ".ab-doc{display:flex;align-items:center;gap:8px;padding:6px 10px;border:1px solid var(--ab-line);border-radius:10px;",
    "background:#fff;color:var(--ab-ink);text-align:left;max-width:240px}",
    ".ab-doc-name{display:block;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:180px}",
    ".ab-doc-size{display:block;font-size:11.5px;color:var(--ab-muted)}",
    ".ab-progress{height:4px;border-radius:2px;background:rgba(255,255,255,.35);overflow:hidden;margin-top:6px}",
    ".ab-progress span{display:block;height:100%;background:#fff;transition:width .15s}",
    ".ab-chat.ab-dragging .ab-scroll{outline:3px dashed var(--ab-accent);outline-offset:-6px}",
    // small screens: full-screen panel
    "@media (max-width:479.98px){",
    ".ab-panel{top:0;right:0;bottom:0;left:0;width:100%;max-width:none;height:100%;max-height:none;",
    "border-radius:0;padding-bottom:env(safe-area-inset-bottom,0px)}",
    ".ab-root.ab-is-open .ab-launcher{display:none}",
    ".ab-input{font-size:16px}",
    "}",
    "@media (prefers-reduced-motion:reduce){.ab-panel{animation:none}.ab-launcher{transition:none}}"
  ].join("");

  function buildDom() {
    var host = document.createElement("abonent-widget");
    // Inline !important beats any host stylesheet targeting the element.
    host.style.cssText = "all:initial!important;display:block!important;position:static!important;" +
      "width:0!important;height:0!important;margin:0!important;padding:0!important;border:0!important;" +
      "transform:none!important;filter:none!important;contain:none!important";
    host.setAttribute("data-api-base", apiBase);
    var shadow = host.attachShadow({ mode: "open" });
    var style = document.createElement("style");
    style.textContent = CSS;
    shadow.appendChild(style);

    ui.host = host;
    ui.shadow = shadow;
    ui.root = el("div", { class: "ab-root" });
    shadow.appendChild(ui.root);

    // Launcher
    ui.launcherLabel = el("span", { class: "ab-launcher-label", text: T.help });
    ui.badge = el("span", { class: "ab-badge", "aria-hidden": "true", hidden: true });
    ui.launcher = el("button", {
      type: "button",
      class: "ab-launcher",
      "aria-haspopup": "dialog",
      "aria-expanded": "false",
      "aria-controls": "ab-panel",
      onclick: function () { toggle(); }
    }, [icon("chat", true), ui.launcherLabel, ui.badge]);
    ui.root.appendChild(ui.launcher);

    // Panel
    ui.back = el("button", {
      type: "button", class: "ab-icon-btn ab-back", "aria-label": T.back, title: T.back, hidden: true,
      onclick: function () { showView("menu"); ui.chatBtn.focus(); }
    }, [icon("back")]);
    ui.title = el("h2", { class: "ab-title", id: "ab-title", text: T.help });
    ui.subtitle = el("div", { class: "ab-subtitle", hidden: true });
    ui.close = el("button", {
      type: "button", class: "ab-icon-btn ab-close", "aria-label": T.close, title: T.close,
      onclick: function () { close(true); }
    }, [icon("close")]);
    var header = el("div", { class: "ab-header" }, [
      ui.back, el("div", { class: "ab-header-text" }, [ui.title, ui.subtitle]), ui.close
    ]);

    // Menu view
    ui.chatBtnTitle = el("span", { class: "ab-chat-btn-title", text: T.chat });
    ui.chatBtn = el("button", {
      type: "button", class: "ab-chat-btn", onclick: function () { openChat(); }
    }, [icon("chat", true), el("span", null, [
      ui.chatBtnTitle, el("span", { class: "ab-chat-btn-hint", text: T.chatHint })
    ])]);
    ui.linksHeading = el("h3", { class: "ab-section", text: T.messengersHeading, hidden: true });
    ui.links = el("ul", { class: "ab-links", "aria-label": T.messengersHeading, hidden: true });
    ui.menu = el("div", { class: "ab-menu" }, [
      el("p", { class: "ab-lead", text: T.chooseChannel }),
      ui.chatBtn, ui.linksHeading, ui.links
    ]);

    // Chat view
    ui.banner = el("div", { class: "ab-banner", role: "status", text: T.offline, hidden: true });
    ui.log = el("div", { class: "ab-log", role: "log", "aria-live": "polite", "aria-label": T.messages });
    ui.chips = el("div", { class: "ab-chips", role: "group", "aria-label": T.answers, hidden: true });
    ui.pendingBox = el("div", { class: "ab-log ab-pending" });
    ui.notice = el("div", { class: "ab-notice", role: "status", hidden: true });
    ui.scroll = el("div", { class: "ab-scroll" }, [ui.log, ui.chips, ui.pendingBox, ui.notice]);
    ui.input = el("textarea", {
      class: "ab-input", rows: "1", maxlength: String(MAX_TEXT), "aria-label": T.inputLabel,
      placeholder: T.placeholder, enterkeyhint: "send"
    });
    ui.input.addEventListener("keydown", onInputKey);
    ui.input.addEventListener("input", onInputChange);
    ui.send = el("button", {
      type: "submit", class: "ab-send", "aria-label": T.send, title: T.send
    }, [icon("send", true)]);
    ui.fileInput = el("input", {
      type: "file", accept: FILE_ACCEPT, hidden: true, tabindex: "-1", "aria-hidden": "true"
    });
    ui.fileInput.addEventListener("change", function () {
      if (ui.fileInput.files && ui.fileInput.files[0]) chooseFile(ui.fileInput.files[0]);
      ui.fileInput.value = "";
    });
    ui.attach = el("button", {
      type: "button", class: "ab-attach", "aria-label": T.attach, title: T.attach,
      onclick: function () { ui.fileInput.click(); }
    }, [icon("clip")]);
    ui.composer = el("form", { class: "ab-composer", novalidate: true },
      [ui.attach, ui.fileInput, ui.input, ui.send]);
    ui.composer.addEventListener("submit", function (ev) { ev.preventDefault(); submitInput(); });
    ui.tray = el("div", { class: "ab-tray", hidden: true });
    ui.fileError = el("div", { class: "ab-file-error", role: "alert", hidden: true });
    ui.input.addEventListener("paste", function (ev) {
      var files = ev.clipboardData && ev.clipboardData.files;
      if (files && files.length) { ev.preventDefault(); chooseFile(files[0]); }
    });
    ui.chat = el("div", { class: "ab-chat", hidden: true },
      [ui.banner, ui.scroll, ui.fileError, ui.tray, ui.composer]);
    ui.chat.addEventListener("dragover", function (ev) {
      if (!ev.dataTransfer || Array.prototype.indexOf.call(ev.dataTransfer.types || [], "Files") < 0) return;
      ev.preventDefault();
      ui.chat.classList.add("ab-dragging");
    });
    ui.chat.addEventListener("dragleave", function (ev) {
      if (!ui.chat.contains(ev.relatedTarget)) ui.chat.classList.remove("ab-dragging");
    });
    ui.chat.addEventListener("drop", function (ev) {
      ui.chat.classList.remove("ab-dragging");
      var files = ev.dataTransfer && ev.dataTransfer.files;
      if (!files || !files.length) return;
      ev.preventDefault();
      chooseFile(files[0]);
    });

    ui.panel = el("div", {
      class: "ab-panel", id: "ab-panel", role: "dialog", "aria-labelledby": "ab-title", hidden: true
    }, [header, ui.menu, ui.chat]);
    ui.panel.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && !ev.isComposing) { ev.stopPropagation(); close(true); }
    });
    ui.root.appendChild(ui.panel);

    document.addEventListener("keydown", function (ev) {
      if (ev.key !== "Escape" || !state.open) return;
      var active = document.activeElement;
      if (!active || active === document.body || active === host) close(active === host);
    });

    document.body.appendChild(host);
  }

  // ---------------------------------------------------------------- config

  function applyConfig(cfg) {
    state.config = cfg || {};
    var title = typeof cfg.title === "string" && cfg.title ? cfg.title : T.help;
    var chatTitle = typeof cfg.chat_title === "string" && cfg.chat_title ? cfg.chat_title : T.chat;
    T.help = title;
    T.chat = chatTitle;
    ui.launcherLabel.textContent = title;
    ui.chatBtnTitle.textContent = chatTitle;
    if (typeof cfg.color === "string" && /^#[0-9a-f]{3,8}$/i.test(cfg.color)) {
      ui.root.style.setProperty("--ab-accent", cfg.color);
      ui.root.style.setProperty("--ab-accent-dark", cfg.color);
    }
    renderMessengers(Array.isArray(cfg.messengers) ? cfg.messengers : []);
    updateHeader();
    updateBadge();
  }

  function companyName() {
    var c = state.config && state.config.company;
    return c && typeof c.name === "string" && c.name ? c.name : "";
  }

  function renderMessengers(list) {
    ui.links.textContent = "";
    var count = 0;
    list.forEach(function (m) {
      if (!m || typeof m !== "object") return;
      var href = safeHref(m.url);
      if (!href) return;
      var kind = MESSENGERS[String(m.type || "").toLowerCase()] || null;
      var title = typeof m.title === "string" && m.title ? m.title : String(m.type || href);
      var mark = el("span", { class: "ab-link-mark", "aria-hidden": "true", text: kind ? kind.letter : title.charAt(0).toUpperCase() });
      if (kind) mark.style.background = kind.color;
      var link = el("a", {
        class: "ab-link", href: href, target: "_blank", rel: "noopener noreferrer",
        "data-messenger": String(m.type || "")
      }, [mark, el("span", { class: "ab-link-title", text: title }),
        el("span", { class: "ab-sr", text: T.opensInNewTab }), icon("external")]);
      ui.links.appendChild(el("li", null, [link]));
      count++;
    });
    ui.links.hidden = count === 0;
    ui.linksHeading.hidden = count === 0;
  }

  function loadConfig() {
    return request("GET", "/widget").then(applyConfig, function () {
      applyConfig({});
    });
  }

  // ---------------------------------------------------------------- views

  function updateHeader() {
    var company = companyName();
    if (state.view === "chat") {
      ui.title.textContent = T.chat;
      ui.subtitle.textContent = company;
      ui.subtitle.hidden = !company;
      ui.back.hidden = false;
    } else {
      ui.title.textContent = company || T.help;
      ui.subtitle.textContent = company ? T.help : "";
      ui.subtitle.hidden = !company;
      ui.back.hidden = true;
    }
  }

  function showView(view) {
    state.view = view === "chat" ? "chat" : "menu";
    ui.menu.hidden = state.view !== "menu";
    ui.chat.hidden = state.view !== "chat";
    updateHeader();
    if (state.view === "chat" && state.open) {
      markRead();
      scrollToBottom(true);
    }
    saveUi();
  }

  function open(view, focus) {
    state.open = true;
    ui.panel.hidden = false;
    ui.root.classList.add("ab-is-open");
    ui.launcher.setAttribute("aria-expanded", "true");
    showView(view || state.view);
    if (state.view === "chat") startChat();
    if (focus !== false) {
      if (state.view === "chat") focusInput();
      else ui.chatBtn.focus();
    }
    saveUi();
  }

  function openChat() {
    open("chat");
  }

  function close(returnFocus) {
    if (!state.open) return;
    state.open = false;
    ui.panel.hidden = true;
    ui.root.classList.remove("ab-is-open");
    ui.launcher.setAttribute("aria-expanded", "false");
    saveUi();
    if (returnFocus) ui.launcher.focus();
  }

  function toggle() {
    if (state.open) close(true);
    else open();
  }

  function focusInput() {
    // Do not pop up the on-screen keyboard by surprise on touch devices.
    if (window.matchMedia && window.matchMedia("(pointer: coarse)").matches) {
      ui.close.focus();
    } else {
      ui.input.focus();
    }
  }

  function chatVisible() {
    return state.open && state.view === "chat" && document.visibilityState !== "hidden";
  }

  function markRead() {
    if (state.unread) {
      state.unread = 0;
      updateBadge();
      saveUi();
    }
  }

  function updateBadge() {
    var n = state.unread;
    ui.badge.hidden = n <= 0;
    ui.badge.textContent = n > 99 ? "99+" : String(n);
    ui.launcher.setAttribute("aria-label", n > 0 ? T.help + ", " + T.unread(n) : T.help);
  }

  function setConnected(ok) {
    if (state.connected === ok) return;
    state.connected = ok;
    if (ui.banner) ui.banner.hidden = ok;
  }

  function showNotice(text, actionLabel, action) {
    ui.notice.textContent = "";
    if (!text) {
      ui.notice.hidden = true;
      return;
    }
    ui.notice.appendChild(el("div", { text: text }));
    if (actionLabel) {
      ui.notice.appendChild(el("button", { type: "button", text: actionLabel, onclick: action }));
    }
    ui.notice.hidden = false;
  }

  function isNearBottom() {
    var s = ui.scroll;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function scrollToBottom(force) {
    if (!force && !isNearBottom()) return;
    ui.scroll.scrollTop = ui.scroll.scrollHeight;
  }

  // ---------------------------------------------------------------- messages

  function authorLabel(msg) {
    var name = typeof msg.author_name === "string" && msg.author_name ? msg.author_name : null;
    if (msg.author === "operator") return name || T.operator;
    return null;
  }

  function renderMessage(msg) {
    var author = ["customer", "bot", "operator", "system"].indexOf(msg.author) >= 0 ? msg.author : "bot";
    var text = typeof msg.text === "string" ? msg.text : "";
    var textNode = el("div", { class: "ab-text" });
    if (author === "bot" || author === "operator") appendRichText(textNode, text);
    else textNode.textContent = text;
    var files = renderFiles(msg.attachments);
    if (!text) textNode.hidden = true;
    var bubble = el("div", { class: "ab-bubble" }, [files, textNode]);
    var when = parseTime(msg.created_at);
    if (when && author !== "system") {
      bubble.appendChild(el("time", { class: "ab-time", datetime: when.toISOString(), text: formatTime(when) }));
    }
    var label = authorLabel(msg);
    var node = el("div", {
      class: "ab-msg ab-msg--" + author,
      "data-id": String(msg.id),
      "data-author": author
    }, [label ? el("div", { class: "ab-author", text: label }) : null, bubble]);
    if (author !== "system") {
      // Screen readers: who said it.
      var who = author === "customer" ? T.you : label || (author === "operator" ? T.operator : T.bot);
      bubble.insertBefore(el("span", { class: "ab-sr", text: who + ": " }), textNode);
    }
    return node;
  }

  /** Add one server message; returns true if it was new. */
  function addMessage(msg, fromLive) {
    if (!msg || typeof msg !== "object" || msg.id == null) return false;
    var id = Number(msg.id);
    if (!isFinite(id) || state.messages.has(id)) return false;
    var node = renderMessage(msg);
    // Keep id order even if messages arrive out of order.
    var before = null;
    if (id < state.lastId) {
      var nodes = ui.log.children;
      for (var i = 0; i < nodes.length; i++) {
        if (Number(nodes[i].getAttribute("data-id")) > id) { before = nodes[i]; break; }
      }
    }
    ui.log.insertBefore(node, before);
    state.messages.set(id, { msg: msg, node: node });
    if (id > state.lastId) state.lastId = id;
    if (msg.author === "customer") resolvePendingFor(id, msg.text);
    if (fromLive && msg.author !== "customer" && !chatVisible()) {
      state.unread++;
      updateBadge();
      saveUi();
    }
    return true;
  }

  function addMessages(list, fromLive) {
    if (!Array.isArray(list) || !list.length) return;
    var stick = isNearBottom();
    var added = false;
    list.slice().sort(function (a, b) { return Number(a && a.id) - Number(b && b.id); })
      .forEach(function (m) { if (addMessage(m, fromLive)) added = true; });
    if (!added) return;
    showNotice(null);
    updateChips();
    scrollToBottom(stick);
  }

  function lastConversational() {
    var nodes = ui.log.children;
    for (var i = nodes.length - 1; i >= 0; i--) {
      var entry = state.messages.get(Number(nodes[i].getAttribute("data-id")));
      // A system notice with buttons (the chat was closed: the menu) is a way forward too.
      if (entry && (entry.msg.author !== "system" || hasButtons(entry.msg))) return entry.msg;
    }
    return null;
  }

  function updateChips() {
    ui.chips.textContent = "";
    var last = lastConversational();
    var busy = state.pending.some(function (p) { return p.status === "sending" || p.status === "sent"; });
    var buttons = last && last.author !== "customer" && Array.isArray(last.buttons)
      ? last.buttons : [];
    buttons.forEach(function (b) {
      if (!b || typeof b.title !== "string" || !b.title) return;
      var payload = b.payload != null ? String(b.payload) : b.title;
      ui.chips.appendChild(el("button", {
        type: "button", class: "ab-chip", text: b.title,
        onclick: function () { sendPayload(b.title, payload); }
      }));
    });
    ui.chips.hidden = busy || !ui.chips.children.length;
  }

  // ---------------------------------------------------------------- sending

  function onInputKey(ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      submitInput();
    }
  }

  var draftTimer = null;
  function onInputChange() {
    autoGrow();
    clearTimeout(draftTimer);
    draftTimer = setTimeout(saveUi, 300);
  }

  function autoGrow() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 132) + "px";
  }

  function submitInput() {
    var text = ui.input.value.trim();
    showFileError(null);
    if (state.file) {
      var file = state.file;
      if (text.length > MAX_TEXT) text = text.slice(0, MAX_TEXT);
      ui.input.value = "";
      autoGrow();
      saveUi();
      clearFile();
      sendFile(file, text);
      ui.input.focus();
      return;
    }
    if (!text) return;
    if (text.length > MAX_TEXT) text = text.slice(0, MAX_TEXT);
    ui.input.value = "";
    autoGrow();
    saveUi();
    sendMessage({ text: text }, text);
    ui.input.focus();
  }

  function sendPayload(title, payload) {
    sendMessage({ payload: payload }, title);
  }

  function sendMessage(body, displayText) {
    var p = { cmid: randomId(), body: body, text: displayText, status: "sending", serverId: null, node: null };
    state.pending.push(p);
    renderPending(p);
    updateChips();
    scrollToBottom(true);
    ensureConversation().then(function () { deliver(p); }, function () {
      p.status = "failed";
      renderPending(p);
    });
  }

  function deliver(p) {
    if (p.status === "done") return;
    if (p.file) { deliverFile(p); return; }
    p.status = "sending";
    p.limited = false;
    renderPending(p);
    var token = state.token;
    var body = { client_message_id: p.cmid };
    for (var k in p.body) body[k] = p.body[k];
    request("POST", "/messages", { token: token, body: body }).then(function (res) {
      if (p.status === "done") return;
      var id = res && res.id != null ? Number(res.id) : null;
      p.serverId = id;
      if (id != null && state.messages.has(id)) {
        finishPending(p);
        return;
      }
      p.status = "sent";
      renderPending(p);
      // The message arrives by push; if the push is down, fetch it.
      if (!live.wsOpen && !live.polling) catchUp();
      setTimeout(function () { if (p.status === "sent") catchUp(); }, 4000);
    }, function (err) {
      if (p.status === "done") return;
      if (isAuthError(err) && token === state.token && !p.reauthed) {
        // The conversation is gone: start a new one and resend there.
        p.reauthed = true;
        dropSession();
        ensureConversation().then(function () { deliver(p); }, function () {
          p.status = "failed";
          renderPending(p);
        });
        return;
      }
      if (isRateLimited(err)) {
        // Too many messages too fast: say so, and send it again once the server allows.
        p.status = "failed";
        p.limited = true;
        renderPending(p);
        setTimeout(function () { if (p.status === "failed" && p.limited) deliver(p); }, retryDelay(err));
        return;
      }
      if (err instanceof HttpError && err.status >= 400 && err.status < 500 && err.status !== 408) {
        p.status = "rejected";
        p.error = err.message;
      } else {
        p.status = "failed";
        if (!(err instanceof HttpError)) setConnected(false);
      }
      renderPending(p);
    });
  }

  function renderPending(p) {
    if (p.status === "done") return;
    var status = el("div", { class: "ab-status" });
    if (p.status === "sending" || p.status === "sent") {
      status.textContent = p.status === "sending"
        ? (p.file ? T.uploading(p.progress || 0) : T.sending) : "";
      status.hidden = p.status === "sent";
    } else {
      status.classList.add("ab-status--error");
      status.appendChild(el("span", {
        text: p.limited && p.status === "failed" ? T.tooOften
          : p.status === "rejected" && p.error ? T.notSent + " " + p.error : T.notSent
      }));
      if (p.status === "failed") {
        status.appendChild(el("button", { type: "button", text: T.retry, onclick: function () {
          ensureConversation().then(function () { deliver(p); }, function () {
            p.status = "failed";
            renderPending(p);
          });
        } }));
      }
      status.appendChild(el("button", { type: "button", text: T.discard, onclick: function () {
        if (p.status === "rejected" && p.body.text && !ui.input.value) {
          ui.input.value = p.body.text;
          autoGrow();
        }
        finishPending(p);
      } }));
    }
    var textNode = el("div", { class: "ab-text", text: p.text });
    var parts = [textNode];
    if (p.file) {
      if (!p.caption) textNode.hidden = true;
      textNode.textContent = p.caption || "";
      if (!p.preview) p.preview = filePreview(p.file, function (url) { p.previewUrl = url; });
      parts.unshift(p.preview);
      if (p.status === "sending") {
        var bar = el("span");
        bar.style.width = (p.progress || 0) + "%";
        parts.push(el("div", { class: "ab-progress", role: "progressbar", "aria-valuemin": "0",
          "aria-valuemax": "100", "aria-valuenow": String(p.progress || 0) }, [bar]));
      }
    }
    var node = el("div", {
      class: "ab-msg ab-msg--customer ab-msg--pending",
      "data-pending": p.status,
      "aria-busy": p.status === "sending" ? "true" : "false"
    }, [el("div", { class: "ab-bubble" }, parts), status]);
    if (p.node && p.node.parentNode) p.node.parentNode.replaceChild(node, p.node);
    else ui.pendingBox.appendChild(node);
    p.node = node;
    updateChips();
  }

  function finishPending(p) {
    p.status = "done";
    if (p.previewUrl) { URL.revokeObjectURL(p.previewUrl); p.previewUrl = null; }
    if (p.node && p.node.parentNode) p.node.parentNode.removeChild(p.node);
    p.node = null;
    var i = state.pending.indexOf(p);
    if (i >= 0) state.pending.splice(i, 1);
    updateChips();
  }

  function resolvePendingFor(id, text) {
    var match = null;
    for (var i = 0; i < state.pending.length; i++) {
      if (state.pending[i].serverId === id) { match = state.pending[i]; break; }
    }
    if (!match) {
      // The push can beat the POST response: match the oldest unconfirmed one by text.
      for (var j = 0; j < state.pending.length; j++) {
        var p = state.pending[j];
        if (p.serverId == null && p.status !== "rejected" && p.text === text) { match = p; break; }
      }
    }
    if (match) finishPending(match);
  }

  function retryFailed() {
    state.pending.slice().forEach(function (p) {
      if (p.status === "failed") ensureConversation().then(function () { deliver(p); }, function () {});
    });
  }

  // ---------------------------------------------------------------- files

  function hasButtons(msg) {
    return Array.isArray(msg.buttons) && msg.buttons.length > 0;
  }

  function maxBytes() {
    var a = state.config && state.config.attachments;
    return a && typeof a.max_bytes === "number" && a.max_bytes > 0 ? a.max_bytes : DEFAULT_MAX_BYTES;
  }

  function megabytes(bytes) {
    var mb = bytes / (1024 * 1024);
    return (mb >= 10 ? String(Math.round(mb)) : mb.toFixed(1).replace(/\.0$/, "")).replace(".", ",");
  }

  function humanSize(bytes) {
    if (typeof bytes !== "number" || bytes <= 0) return "";
    if (bytes >= 1024 * 1024) return megabytes(bytes) + " МБ";
    return Math.max(1, Math.round(bytes / 1024)) + " КБ";
  }

  function showFileError(text) {
    ui.fileError.textContent = text || "";
    ui.fileError.hidden = !text;
  }

  function fileErrorText(code) {
    if (code === "file_too_large") return T.fileTooLarge(megabytes(maxBytes()));
    if (code === "unsupported_type") return T.fileWrongType;
    if (code === "empty_file") return T.fileEmpty;
    if (code === "image_too_large") return T.fileTooManyPixels;
    return T.fileFailed;
  }

  function isImage(file) {
    return /^image\//.test(file.type || "") || /\.(jpe?g|png|webp|heic|heif)$/i.test(file.name || "");
  }

  /** A file the customer picked, pasted or dropped: checked, then shown above the box. */
  function chooseFile(file) {
    if (!file) return;
    showFileError(null);
    if (!file.size) { showFileError(T.fileEmpty); return; }
    if (file.size > maxBytes()) { showFileError(fileErrorText("file_too_large")); return; }
    if (!FILE_TYPES.test(file.type || "") && !FILE_NAMES.test(file.name || "")) {
      showFileError(T.fileWrongType);
      return;
    }
    clearFile();
    state.file = file;
    ui.tray.textContent = "";
    ui.tray.appendChild(filePreview(file, function (url) { state.trayUrl = url; }));
    ui.tray.appendChild(el("div", { class: "ab-tray-info" }, [
      el("span", { class: "ab-tray-name", text: file.name || T.photo }),
      el("span", { class: "ab-tray-size", text: humanSize(file.size) })
    ]));
    ui.tray.appendChild(el("button", {
      type: "button", "aria-label": T.removeFile, title: T.removeFile,
      onclick: function () { clearFile(); focusInput(); }
    }, [icon("close")]));
    ui.tray.hidden = false;
    if (state.open && state.view === "chat") focusInput();
  }

  function clearFile() {
    if (state.trayUrl) { URL.revokeObjectURL(state.trayUrl); state.trayUrl = null; }
    state.file = null;
    if (ui.tray) { ui.tray.textContent = ""; ui.tray.hidden = true; }
  }

  /** A picked file's preview; ``keep`` is given the object URL, to revoke it later. */
  function filePreview(file, keep) {
    if (isImage(file) && !/heic|heif/i.test(file.type || file.name || "")) {
      var url = URL.createObjectURL(file);
      keep(url);
      return el("img", { src: url, alt: file.name || T.photo });
    }
    return el("span", { class: "ab-doc" }, [icon("file"), el("span", null, [
      el("span", { class: "ab-doc-name", text: file.name || "" }),
      el("span", { class: "ab-doc-size", text: humanSize(file.size) })
    ])]);
  }

  function sendFile(file, caption) {
    var p = {
      cmid: randomId(), body: {}, file: file, caption: caption, text: caption || file.name,
      status: "sending", serverId: null, node: null, progress: 0
    };
    state.pending.push(p);
    renderPending(p);
    scrollToBottom(true);
    ensureConversation().then(function () { deliver(p); }, function () {
      p.status = "failed";
      renderPending(p);
    });
  }

  /** Upload with XMLHttpRequest: fetch() cannot report upload progress. */
  function deliverFile(p) {
    p.status = "sending";
    p.progress = 0;
    renderPending(p);
    var token = state.token;
    var form = new FormData();
    form.append("file", p.file, p.file.name || "photo.jpg");
    if (p.caption) form.append("text", p.caption);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", apiBase + API_PATH + "/attachments");
    xhr.setRequestHeader("Authorization", "Bearer " + token);
    xhr.setRequestHeader("Idempotency-Key", p.cmid);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (ev) {
      if (!ev.lengthComputable || p.status !== "sending") return;
      var pct = Math.min(99, Math.round(ev.loaded * 100 / ev.total));
      if (pct === p.progress) return;
      p.progress = pct;
      renderPending(p);
    };
    xhr.onload = function () {
      if (p.status === "done") return;
      var data = null;
      try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
      if (xhr.status === 202 && data && data.id != null) {
        p.serverId = Number(data.id);
        if (state.messages.has(p.serverId)) { finishPending(p); return; }
        p.status = "sent";
        renderPending(p);
        if (!live.wsOpen && !live.polling) catchUp();
        setTimeout(function () { if (p.status === "sent") catchUp(); }, 4000);
        return;
      }
      var code = data && data.error && data.error.code;
      if (xhr.status === 401 && token === state.token && !p.reauthed) {
        p.reauthed = true;
        dropSession();
        ensureConversation().then(function () { deliver(p); }, function () {
          p.status = "failed";
          renderPending(p);
        });
        return;
      }
      if (xhr.status >= 400 && xhr.status < 500 && xhr.status !== 408 && xhr.status !== 429) {
        p.status = "rejected";
        p.error = fileErrorText(code);
      } else {
        p.status = "failed";
      }
      renderPending(p);
    };
    xhr.onerror = function () {
      if (p.status === "done") return;
      p.status = "failed";
      p.error = T.fileFailed;
      setConnected(false);
      renderPending(p);
    };
    xhr.send(form);
  }

  /** Files on a message from the server: photos as thumbnails, PDFs as a named link.
   *  They are fetched with the chat's token (never put in a URL) and shown as blobs. */
  function renderFiles(list) {
    if (!Array.isArray(list) || !list.length) return null;
    var box = el("div", { class: "ab-files" });
    list.forEach(function (f) {
      if (!f || f.id == null) return;
      var name = typeof f.name === "string" ? f.name : "";
      if (f.kind === "image") {
        var img = el("img", { alt: name || T.photo });
        var thumb = el("button", {
          type: "button", class: "ab-thumb", title: T.openFull, "aria-label": T.openFull + ": " + name,
          onclick: function () { openFile(f, true); }
        }, [img]);
        loadFile(f).then(function (url) { img.src = url; }, function () { img.alt = T.fileUnavailable; });
        box.appendChild(thumb);
      } else {
        box.appendChild(el("button", {
          type: "button", class: "ab-doc", title: T.download,
          onclick: function () { openFile(f, false); }
        }, [icon("file"), el("span", null, [
          el("span", { class: "ab-doc-name", text: name }),
          el("span", { class: "ab-doc-size", text: humanSize(f.size) })
        ])]));
      }
    });
    return box;
  }

  var fileUrls = new Map(); // attachment id -> promise of a blob URL

  function loadFile(f) {
    var id = Number(f.id);
    if (fileUrls.has(id)) return fileUrls.get(id);
    var token = state.token;
    var promise = fetch(apiBase + API_PATH + "/attachments/" + id, {
      headers: { Authorization: "Bearer " + token }
    }).then(function (resp) {
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.blob();
    }).then(function (blob) { return URL.createObjectURL(blob); });
    promise.catch(function () { fileUrls.delete(id); });
    fileUrls.set(id, promise);
    return promise;
  }

  function openFile(f, inline) {
    loadFile(f).then(function (url) {
      var a = el("a", { href: url, target: "_blank", rel: "noopener" });
      if (!inline) a.setAttribute("download", f.name || "document.pdf");
      ui.root.appendChild(a);
      a.click();
      a.parentNode.removeChild(a);
    }, function () { showFileError(T.fileUnavailable); });
  }

  // ---------------------------------------------------------------- conversation

  function ensureConversation() {
    if (state.token) return Promise.resolve(state.token);
    if (state.starting) return state.starting;
    state.startError = false;
    if (!state.messages.size) showNotice(T.connecting);
    state.starting = request("POST", "/conversations", { body: {} }).then(function (res) {
      if (!res || typeof res.token !== "string") throw new Error("bad response");
      adoptSession(res.token, res.conversation_id, false);
      state.starting = null;
      showNotice(null);
      setTimeout(retryFailed, 0); // messages typed while the chat could not start
      return state.token;
    }, function (err) {
      state.starting = null;
      state.startError = true;
      if (!(err instanceof HttpError)) setConnected(false);
      showNotice(isRateLimited(err) ? T.tooOften : T.startFailed, T.retry, function () { startChat(); });
      throw err;
    });
    return state.starting;
  }

  function startChat() {
    if (state.token) {
      if (!live.ws && !live.polling) startLive();
      return;
    }
    ensureConversation().catch(function () {});
  }

  function clearMessages() {
    state.messages.clear();
    state.lastId = 0;
    ui.log.textContent = "";
    updateChips();
  }

  function adoptSession(token, conversationId, loadHistory) {
    stopLive();
    clearMessages();
    state.token = token;
    state.conversationId = conversationId != null ? conversationId : null;
    saveSession();
    if (loadHistory) {
      fetchHistory().then(startLive, function () {});
    } else {
      startLive();
    }
  }

  function dropSession() {
    stopLive();
    state.token = null;
    state.conversationId = null;
    saveSession();
    clearMessages();
    state.unread = 0;
    updateBadge();
  }

  /** The server rejected the token: forget it; start over if the chat is on screen. */
  function sessionRejected() {
    dropSession();
    if (state.open && state.view === "chat") startChat();
  }

  function fetchHistory() {
    var token = state.token;
    var pages = 0;
    function page() {
      return request("GET", "/messages?after=" + state.lastId, { token: token }).then(function (data) {
        if (token !== state.token) return;
        var list = data && Array.isArray(data.messages) ? data.messages : [];
        var before = state.lastId;
        addMessages(list, false);
        pages++;
        if (list.length && state.lastId > before && pages < 50) return page();
      });
    }
    return page().catch(function (err) {
      if (isAuthError(err) && token === state.token) sessionRejected();
      else if (!(err instanceof HttpError)) setConnected(false);
      throw err;
    });
  }

  // ---------------------------------------------------------------- live updates

  function startLive() {
    if (!state.token || live.ws || live.polling || live.wsTimer) return; // already live
    live.generation++;
    connectWs();
  }

  function stopLive() {
    live.generation++;
    clearTimeout(live.wsTimer);
    live.wsTimer = null;
    if (live.ws) {
      var ws = live.ws;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch (err) { /* ignore */ }
    }
    live.ws = null;
    live.wsOpen = false;
    live.wsBackoff = WS_BACKOFF_MIN;
    stopPolling();
  }

  function connectWs() {
    clearTimeout(live.wsTimer);
    live.wsTimer = null;
    if (!state.token) return;
    var gen = live.generation;
    if (typeof WebSocket === "undefined") {
      startPolling();
      return;
    }
    var url = apiBase.replace(/^http/i, "ws") + API_PATH + "/ws?token=" + encodeURIComponent(state.token);
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      wsDown(gen);
      return;
    }
    live.ws = ws;
    ws.onopen = function () {
      if (gen !== live.generation) return;
      live.wsOpen = true;
      live.wsBackoff = WS_BACKOFF_MIN;
      setConnected(true);
      stopPolling();
      catchUp(); // anything written before the socket opened
    };
    ws.onmessage = function (ev) {
      if (gen !== live.generation) return;
      onPush(ev.data);
    };
    ws.onerror = function () { /* a close event follows */ };
    ws.onclose = function (ev) {
      if (gen !== live.generation || live.ws !== ws) return;
      live.ws = null;
      live.wsOpen = false;
      if (ev.code === 4401 || ev.code === 4403 || ev.code === 1008) {
        // Possibly a rejected token: the long poll will tell for sure (401).
        catchUp();
      }
      wsDown(gen);
    };
  }

  function wsDown(gen) {
    if (gen !== live.generation || !state.token) return;
    startPolling();
    var delay = live.wsBackoff * (0.75 + Math.random() * 0.5);
    live.wsBackoff = Math.min(live.wsBackoff * 2, WS_BACKOFF_MAX);
    live.wsTimer = setTimeout(function () {
      if (gen === live.generation) connectWs();
    }, delay);
  }

  function onPush(raw) {
    var data;
    try { data = JSON.parse(raw); } catch (err) { return; }
    if (!data || typeof data !== "object") return;
    if (Array.isArray(data.messages)) addMessages(data.messages, true);
    else if (data.message && typeof data.message === "object") addMessages([data.message], true);
    else if (data.id != null && typeof data.author === "string") addMessages([data], true);
  }

  function startPolling() {
    if (live.polling || !state.token) return;
    live.polling = true;
    var controller = new AbortController();
    live.pollAbort = controller;
    var token = state.token;
    var failures = 0;
    (function loop() {
      if (!live.polling || live.pollAbort !== controller || token !== state.token) return;
      var started = Date.now();
      request("GET", "/messages?after=" + state.lastId + "&wait=" + LONG_POLL_WAIT, {
        token: token, signal: controller.signal, timeout: (LONG_POLL_WAIT + 15) * 1000
      }).then(function (data) {
        if (controller.signal.aborted) return;
        failures = 0;
        var list = data && Array.isArray(data.messages) ? data.messages : [];
        addMessages(list, true);
        // Never spin if the server answers an empty list at once.
        var pause = !list.length && Date.now() - started < 1000 ? 1000 : 0;
        return sleep(pause, controller.signal).then(loop);
      }, function (err) {
        if (controller.signal.aborted) return;
        if (isAuthError(err)) {
          if (token === state.token) sessionRejected();
          return;
        }
        failures++;
        if (!(err instanceof HttpError)) setConnected(false);
        return sleep(Math.min(1000 * Math.pow(2, failures), 30000), controller.signal).then(loop);
      });
    })();
  }

  function stopPolling() {
    live.polling = false;
    if (live.pollAbort) live.pollAbort.abort();
    live.pollAbort = null;
  }

  /** One immediate fetch of anything newer than the last seen id. */
  function catchUp() {
    if (!state.token) return Promise.resolve();
    if (live.catchingUp) {
      live.catchUpAgain = true;
      return live.catchingUp;
    }
    var token = state.token;
    live.catchingUp = request("GET", "/messages?after=" + state.lastId, { token: token }).then(function (data) {
      if (token === state.token) addMessages(data && data.messages, true);
    }, function (err) {
      if (isAuthError(err) && token === state.token) sessionRejected();
    }).then(function () {
      live.catchingUp = null;
      if (live.catchUpAgain) {
        live.catchUpAgain = false;
        return catchUp();
      }
    });
    return live.catchingUp;
  }

  // ---------------------------------------------------------------- boot

  function restoreFromStorage() {
    var stored = local.get(SESSION_KEY);
    if (stored && typeof stored.token === "string" && stored.token) {
      state.token = stored.token;
      state.conversationId = stored.conversation_id != null ? stored.conversation_id : null;
    }
    var saved = session.get(UI_KEY) || {};
    state.view = saved.view === "chat" ? "chat" : "menu";
    state.unread = typeof saved.unread === "number" && saved.unread > 0 ? saved.unread : 0;
    if (typeof saved.draft === "string" && saved.draft) {
      ui.input.value = saved.draft.slice(0, MAX_TEXT);
    }
    return !!saved.open;
  }

  function onStorage(ev) {
    if (ev.key !== SESSION_KEY) return;
    var value = null;
    try { value = ev.newValue ? JSON.parse(ev.newValue) : null; } catch (err) { value = null; }
    var token = value && typeof value.token === "string" ? value.token : null;
    if (token === state.token) return;
    // Another tab started a new conversation or dropped a rejected one: follow it.
    if (token) adoptSession(token, value.conversation_id, true);
    else dropSession();
  }

  function boot() {
    buildDom();
    var wasOpen = restoreFromStorage();
    updateBadge();
    updateHeader();
    autoGrow();
    loadConfig();
    if (state.token) {
      fetchHistory().then(function () {
        if (state.token) startLive();
      }, function () {
        if (state.token) startLive(); // network trouble: keep trying live
      });
    }
    if (wasOpen) open(state.view, false);
    else showView(state.view);

    window.addEventListener("storage", onStorage);
    window.addEventListener("online", function () {
      setConnected(true);
      if (state.token) {
        catchUp();
        if (!live.wsOpen) connectWs();
      }
      retryFailed();
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") {
        if (state.token) catchUp();
        if (chatVisible()) markRead();
      }
    });
  }

  window.AbonentWidget = {
    __loaded: true,
    apiBase: apiBase,
    open: function () { if (ui.panel) open(); },
    openChat: function () { if (ui.panel) openChat(); },
    close: function () { if (ui.panel) close(false); },
    toggle: function () { if (ui.panel) toggle(); }
  };

  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot);
})();
