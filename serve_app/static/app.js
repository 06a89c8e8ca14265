/* visearch web page: upload / paste / drop a photo, pick or draw an object, browse the products.
   Vanilla JS, no build step. The API: POST /v1/photo, POST /v1/search, POST /v1/refine, POST /v1/events. */
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const el = {
    file: $("#file"), drop: $("#drop"), articleForm: $("#article-form"), article: $("#article"),
    error: $("#error"), status: $("#status"), stage: $("#stage"), frame: $("#frame"), photo: $("#photo"),
    boxes: $("#boxes"), draw: $("#draw"), hits: $("#hits"), notice: $("#notice"), empty: $("#empty"),
    results: $("#results"), meta: $("#meta"), category: $("#f-category"), priceMin: $("#f-price-min"),
    priceMax: $("#f-price-max"), apply: $("#f-apply"), tags: $("#tags"), refineForm: $("#refine-form"),
    refine: $("#refine"),
  };

  const state = {
    sessionId: null,   // the uploaded photo's search session
    objects: [],       // detected objects of that photo
    picked: null,      // the object id searched, or null
    userBox: null,     // the box the user drew (photo pixels), when that was searched
    photoUrl: null,    // object URL of the photo shown
    photoReady: false, // the photo has loaded: its natural size maps boxes to the display
    last: null,        // the last query, to run again when the filters change
    response: null,    // the last answer
    seq: 0,            // answers to older queries than the latest are dropped
    controller: null,
    categories: new Set(),
  };
  window.visearch = state; // for debugging and tests

  // ------------------------------------------------------------------ formatting
  const rub = (digits) => new Intl.NumberFormat("ru-RU", { style: "currency", currency: "RUB",
                                                          minimumFractionDigits: digits, maximumFractionDigits: digits });
  const rubWhole = rub(0), rubKopecks = rub(2);
  const formatPrice = (p) => {
    const v = Number(p);
    if (p == null || !Number.isFinite(v)) return "—";
    return (Number.isInteger(v) ? rubWhole : rubKopecks).format(v);
  };
  const formatScore = (s) => (s == null ? "" : Number(s).toFixed(2));

  function node(tag, attrs = {}, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "class") n.className = v;
      else if (k === "text") n.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") n.setAttribute(k, v === true ? "" : v);
      else n[k] = v;
    }
    for (const c of children) if (c != null) n.append(c);
    return n;
  }

  // ------------------------------------------------------------------ status and errors
  function showError(message, code) {
    el.error.replaceChildren(
      node("strong", { text: "Ошибка · Error: " }),
      node("span", { class: "error-message", text: message || "unknown error" }),
      code ? node("code", { class: "error-code", text: ` (${code})` }) : null,
    );
    el.error.hidden = false;
  }
  function clearError() { el.error.hidden = true; el.error.replaceChildren(); }
  function setBusy(text) {
    el.status.textContent = text || "";
    document.body.toggleAttribute("data-busy", Boolean(text));
    el.results.setAttribute("aria-busy", text ? "true" : "false");
  }

  class ApiError extends Error {
    constructor(message, code, status) { super(message); this.code = code; this.status = status; }
  }

  async function api(path, init) {
    let resp;
    try {
      resp = await fetch(path, { credentials: "same-origin", ...init });
    } catch (e) {
      if (e && e.name === "AbortError") throw e;
      throw new ApiError(`сеть недоступна · network error (${e && e.message ? e.message : e})`, "network", 0);
    }
    let body = null;
    const text = await resp.text();
    try { body = text ? JSON.parse(text) : null; } catch { body = null; }
    if (!resp.ok) {
      const err = body && body.error;
      const message = err && err.message ? err.message : `HTTP ${resp.status} ${resp.statusText || ""}`.trim();
      throw new ApiError(message, err && err.code ? err.code : `http_${resp.status}`, resp.status);
    }
    if (body == null) throw new ApiError(`unreadable answer (HTTP ${resp.status})`, "bad_answer", resp.status);
    return body;
  }

  // ------------------------------------------------------------------ queries
  function filters() {
    const f = {};
    if (el.category.value) f.category = [el.category.value];
    const lo = el.priceMin.value.trim(), hi = el.priceMax.value.trim();
    if (lo !== "" && Number(lo) >= 0) f.price_min = Number(lo);
    if (hi !== "" && Number(hi) >= 0) f.price_max = Number(hi);
    return Object.keys(f).length ? f : null;
  }

  /** Run one query; only the latest one's answer (or error) is shown. */
  async function run(query) {
    const seq = ++state.seq;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    clearError();
    setBusy(query.busy);
    try {
      const f = filters();
      let init;
      if (query.kind === "photo") {
        const form = new FormData();
        form.append("image", query.file, query.file.name || "photo");
        if (f) form.append("filters", JSON.stringify(f));
        init = { method: "POST", body: form, signal: controller.signal };
      } else {
        const body = { ...query.body };
        if (f) body.filters = f;
        init = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
                 signal: controller.signal };
      }
      const path = { photo: "/v1/photo", search: "/v1/search", refine: "/v1/refine" }[query.kind];
      const answer = await api(path, init);
      if (seq !== state.seq) return;
      state.last = query;
      show(answer, query);
    } catch (e) {
      if (seq !== state.seq || (e && e.name === "AbortError")) return;
      showError(e && e.message ? e.message : String(e), e && e.code);
    } finally {
      if (seq === state.seq) { setBusy(""); state.controller = null; }
    }
  }

  function searchPhoto(file) {
    if (!file) return;
    run({ kind: "photo", file, busy: `Ищем по фото «${file.name || "photo"}»… · Searching…` });
  }
  function searchObject(id) {
    if (!state.sessionId) return;
    run({ kind: "search", body: { session_id: state.sessionId, object_id: id }, busy: "Ищем… · Searching…" });
  }
  function searchBox(box) {
    if (!state.sessionId) return;
    run({ kind: "search", body: { session_id: state.sessionId, box }, userBox: box, busy: "Ищем… · Searching…" });
  }
  function refineObject(text) {
    const t = String(text || "").trim();
    if (!state.sessionId) return;
    if (!t) { showError("опишите, что изменить · describe the change, e.g. «same but red»", "empty_text"); el.refine.focus(); return; }
    const body = { session_id: state.sessionId, text: t };
    if (state.picked != null) body.object_id = state.picked;
    run({ kind: "refine", body, busy: `Уточняем: «${t}»… · Refining…` });
  }
  function searchArticle(article) {
    const a = String(article || "").trim();
    if (!a) { showError("введите артикул · type an article number", "empty_article"); el.article.focus(); return; }
    const body = { article: a };
    if (state.sessionId) body.session_id = state.sessionId;
    run({ kind: "search", body, busy: `Ищем артикул ${a}… · Searching article ${a}…` });
  }

  // ------------------------------------------------------------------ rendering an answer
  function show(answer, query) {
    state.response = answer;
    if (query.kind === "photo") {
      if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
      state.photoUrl = URL.createObjectURL(query.file);
      state.sessionId = answer.session_id;
      state.objects = answer.objects || [];
      state.photoReady = false;
      el.stage.hidden = false;
      el.stage.dataset.loaded = "false";
      el.photo.src = state.photoUrl;
    } else if (answer.objects && answer.objects.length) {
      state.objects = answer.objects;
    }
    if (query.kind === "refine") {
      state.picked = answer.picked == null ? state.picked : answer.picked;
    } else if (query.kind === "photo" || (query.body && (query.body.object_id != null || query.body.box))) {
      state.picked = answer.picked == null ? null : answer.picked;
      state.userBox = query.userBox || null;
    } else {
      state.picked = null; // a typed article: no object of the photo was searched
      state.userBox = null;
    }
    renderBoxes();
    renderHits(answer);
    renderTags(answer);
    renderResults(answer);
    renderMeta(answer);
    el.refineForm.hidden = !state.sessionId || state.picked == null;
  }

  function renderTags(answer) {
    const tags = answer.tags || [];
    el.tags.replaceChildren();
    el.tags.hidden = !tags.length && !answer.refinement;
    if (answer.refinement) {
      const asked = (answer.refinement_tags || []).map((t) => t.text).join(", ");
      el.tags.append(node("span", { class: "refinement", "data-testid": "refinement",
                                    title: asked ? `${asked} first` : "",
                                    text: asked ? `«${answer.refinement}» → ${asked}` : `«${answer.refinement}»` }));
    }
    for (const t of tags) {
      el.tags.append(node("span", { class: `tag facet-${t.facet}`, "data-testid": "tag", "data-facet": t.facet,
                                    title: `${t.facet} · ${formatScore(t.score)}`, text: t.text }));
    }
  }

  function renderBoxes() {
    for (const b of el.boxes.querySelectorAll(".box")) b.remove();
    const w = el.photo.naturalWidth, h = el.photo.naturalHeight;
    if (!state.photoReady || !w || !h) return; // drawn once the photo has loaded
    const pct = (v, of) => `${Math.max(0, Math.min(100, (v / of) * 100))}%`;
    const place = (n, [x1, y1, x2, y2]) => {
      n.style.left = pct(x1, w); n.style.top = pct(y1, h);
      n.style.width = pct(x2 - x1, w); n.style.height = pct(y2 - y1, h);
    };
    for (const o of state.objects) {
      const picked = state.userBox == null && o.id === state.picked;
      const label = o.fallback ? "всё фото · whole photo" : `${o.category} ${formatScore(o.score)}`;
      const b = node("button", {
        type: "button", class: `box${picked ? " picked" : ""}${o.fallback ? " fallback" : ""}`,
        "data-testid": "box", "data-object-id": String(o.id), "aria-pressed": picked ? "true" : "false",
        title: `Искать этот предмет · Search this object: ${label}`,
        "aria-label": `Искать · Search: ${label}`,
      }, node("span", { class: "box-label", text: label }));
      if (o.articles && o.articles.length) b.append(node("span", { class: "box-article", text: `арт. ${o.articles[0]}` }));
      place(b, o.box);
      b.addEventListener("click", (e) => {
        if (suppressClick) { e.preventDefault(); return; }
        searchObject(o.id);
      });
      el.boxes.append(b);
    }
    if (state.userBox) {
      const b = node("div", { class: "box user picked", "data-testid": "user-box", "aria-hidden": "true" },
                     node("span", { class: "box-label", text: "ваша область · your box" }));
      place(b, state.userBox);
      el.boxes.append(b);
    }
  }

  function titleOf(productId, answer) {
    const r = (answer.results || []).find((x) => x.product_id === productId);
    return r && r.title ? r.title : null;
  }

  function renderHits(answer) {
    const hits = answer.article_hits || [];
    el.hits.replaceChildren();
    el.hits.hidden = hits.length === 0;
    if (!hits.length) return;
    el.hits.append(node("h2", { text: "Артикул на фото · Article on the photo" }));
    const list = node("ul", { class: "hit-list" });
    for (const hit of hits) {
      const name = node("span", { class: "hit-title", text: titleOf(hit.product_id, answer) || hit.product_id });
      const btn = node("button", { type: "button", class: "hit", "data-testid": "hit", "data-article": hit.article,
                                   "data-product-id": hit.product_id },
                       `Артикул ${hit.article} найден на фото → · Article ${hit.article} found on the photo → `, name);
      btn.addEventListener("click", () => { el.article.value = hit.article; searchArticle(hit.article); });
      list.append(node("li", {}, btn));
      if (!titleOf(hit.product_id, answer)) {
        api(`/v1/products/${encodeURIComponent(hit.product_id)}`)
          .then((card) => { if (card && card.title) name.textContent = card.title; })
          .catch(() => {});
      }
    }
    el.hits.append(list);
  }

  function renderResults(answer) {
    const results = answer.results || [];
    el.results.replaceChildren();
    el.results.dataset.requestId = answer.request_id;
    el.empty.hidden = results.length > 0;
    el.empty.textContent = "Ничего не найдено · Nothing found";
    el.notice.hidden = !(results.length && !results.some((r) => r.match === "exact"));
    results.forEach((r, i) => {
      if (r.category) state.categories.add(r.category);
      el.results.append(resultCard(r, i, answer.request_id));
    });
    refreshCategories();
    if (results.length) {
      sendEvents(results.map((r, i) => ({ type: "impression", request_id: answer.request_id, product_id: r.product_id,
                                          position: i, event_id: `${answer.request_id}:imp:${i}` })));
    }
  }

  function resultCard(r, position, requestId) {
    const exact = r.match === "exact";
    const img = r.image_url
      ? node("img", { class: "thumb", src: r.image_url, alt: r.title || r.product_id, loading: "lazy", width: 160,
                      height: 160 })
      : node("div", { class: "thumb none", "aria-hidden": "true", text: "нет фото" });
    const rating = r.rating == null ? null
      : node("span", { class: "rating", "aria-label": `рейтинг · rating ${r.rating}`,
                       text: `★ ${Number(r.rating).toFixed(1)}${r.reviews_count != null ? ` (${r.reviews_count})` : ""}` });
    const open = node("button", { type: "button", class: "result-open", "data-testid": "result-open" },
      img,
      node("span", { class: `badge ${exact ? "exact" : "similar"}`, "data-testid": "badge", "data-match": r.match,
                     text: exact ? "exact · точно" : "similar · похоже" }),
      node("span", { class: "title", text: r.title || r.product_id }),
      node("span", { class: "price", text: formatPrice(r.price) }),
      rating,
      node("span", { class: "article", text: r.article ? `арт. ${r.article}` : "" }),
      r.brand ? node("span", { class: "brand", text: r.brand }) : null,
    );
    open.addEventListener("click", () => {
      for (const c of el.results.querySelectorAll(".result.selected")) c.classList.remove("selected");
      li.classList.add("selected");
      sendEvents([{ type: "click", request_id: requestId, product_id: r.product_id, position }]);
    });
    const cart = node("button", { type: "button", class: "cart", "data-testid": "cart",
                                  "aria-label": `В корзину · Add to cart: ${r.title || r.product_id}`,
                                  text: "В корзину · Add to cart" });
    cart.addEventListener("click", () => {
      cart.textContent = "В корзине ✓ · In cart";
      sendEvents([{ type: "add_to_cart", request_id: requestId, product_id: r.product_id, position }]);
    });
    const li = node("li", { class: `result ${exact ? "is-exact" : "is-similar"}`, "data-testid": "result",
                            "data-product-id": r.product_id, "data-position": String(position),
                            "data-match": r.match, "data-via": r.via || "vector" }, open, cart);
    return li;
  }

  function renderMeta(answer) {
    const t = answer.timings_ms || {};
    const timings = Object.entries(t).map(([k, v]) => `${k} ${Math.round(Number(v))} ms`).join(" · ");
    const models = Object.entries(answer.models || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    el.meta.replaceChildren(
      node("span", { "data-testid": "variant", text: `variant ${answer.variant || "—"}` }),
      answer.experiment ? node("span", { text: `experiment ${answer.experiment}` }) : null,
      answer.index_version ? node("span", { text: `index ${answer.index_version}` }) : null,
      models ? node("span", { text: models }) : null,
      timings ? node("span", { "data-testid": "timings", text: timings }) : null,
      node("span", { class: "rid", text: `request ${answer.request_id}` }),
    );
  }

  function refreshCategories() {
    const current = el.category.value;
    const known = new Set([...el.category.options].map((o) => o.value));
    for (const c of [...state.categories].sort()) {
      if (!known.has(c)) el.category.append(node("option", { value: c, text: c }));
    }
    el.category.value = current;
  }

  // ------------------------------------------------------------------ events (never break the page)
  function sendEvents(events) {
    if (!events.length) return;
    try {
      fetch("/v1/events", { method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
                            body: JSON.stringify({ events }), keepalive: true })
        .then((r) => { if (!r.ok) console.warn("events refused", r.status); })
        .catch((e) => console.warn("events not sent", e));
    } catch (e) {
      console.warn("events not sent", e);
    }
  }

  // ------------------------------------------------------------------ the photo: size, boxes, drawing
  function fitPhoto() {
    const w = el.photo.naturalWidth, h = el.photo.naturalHeight;
    if (!w || !h) return;
    const maxW = el.stage.clientWidth || w;
    const maxH = Math.max(240, window.innerHeight * 0.7);
    const scale = Math.min(maxW / w, maxH / h);
    el.photo.style.width = `${Math.round(w * scale)}px`;
    el.photo.style.height = `${Math.round(h * scale)}px`;
  }
  el.photo.addEventListener("load", () => {
    state.photoReady = true;
    fitPhoto();
    renderBoxes();
    el.stage.dataset.loaded = "true";
  });
  el.photo.addEventListener("error", () => {
    if (!el.photo.getAttribute("src")) return;
    el.stage.dataset.loaded = "false";
    el.status.textContent = "Браузер не может показать это фото, но поиск выполнен · The browser cannot display this photo; the search ran";
  });
  window.addEventListener("resize", fitPhoto);

  let drag = null;
  let suppressClick = false;
  const MIN_DRAG = 6; // display pixels before a press becomes a drawn box

  function localPoint(e, rect) {
    return [Math.max(0, Math.min(rect.width, e.clientX - rect.left)),
            Math.max(0, Math.min(rect.height, e.clientY - rect.top))];
  }
  el.boxes.addEventListener("pointerdown", (e) => {
    if (!state.sessionId || e.button !== 0 || !state.photoReady) return;
    const rect = el.photo.getBoundingClientRect();
    const [x, y] = localPoint(e, rect);
    drag = { id: e.pointerId, rect, x0: x, y0: y, x1: x, y1: y, active: false };
  });
  el.boxes.addEventListener("pointermove", (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    [drag.x1, drag.y1] = localPoint(e, drag.rect);
    if (!drag.active && (Math.abs(drag.x1 - drag.x0) >= MIN_DRAG || Math.abs(drag.y1 - drag.y0) >= MIN_DRAG)) {
      drag.active = true;
      try { el.boxes.setPointerCapture(e.pointerId); } catch { /* the pointer is gone */ }
      el.draw.hidden = false;
    }
    if (drag.active) {
      e.preventDefault();
      const x = Math.min(drag.x0, drag.x1), y = Math.min(drag.y0, drag.y1);
      Object.assign(el.draw.style, { left: `${x}px`, top: `${y}px`, width: `${Math.abs(drag.x1 - drag.x0)}px`,
                                     height: `${Math.abs(drag.y1 - drag.y0)}px` });
    }
  });
  function endDrag(e, cancelled) {
    if (!drag || e.pointerId !== drag.id) return;
    const d = drag;
    drag = null;
    el.draw.hidden = true;
    if (!d.active) return; // a plain click: a box's own click handler does the rest
    suppressClick = true;
    setTimeout(() => { suppressClick = false; }, 0);
    if (cancelled) return;
    const sx = el.photo.naturalWidth / d.rect.width, sy = el.photo.naturalHeight / d.rect.height;
    const box = [Math.min(d.x0, d.x1) * sx, Math.min(d.y0, d.y1) * sy, Math.max(d.x0, d.x1) * sx,
                 Math.max(d.y0, d.y1) * sy].map((v) => Math.round(v * 10) / 10);
    if (box[2] - box[0] < 4 || box[3] - box[1] < 4) return;
    searchBox(box);
  }
  el.boxes.addEventListener("pointerup", (e) => endDrag(e, false));
  el.boxes.addEventListener("pointercancel", (e) => endDrag(e, true));

  // ------------------------------------------------------------------ inputs: file, drop, paste, article
  el.file.addEventListener("change", () => {
    const f = el.file.files && el.file.files[0];
    if (f) searchPhoto(f);
    el.file.value = ""; // choosing the same file again searches again
  });

  const hasFiles = (e) => e.dataTransfer && [...(e.dataTransfer.types || [])].includes("Files");
  document.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    el.drop.classList.add("over");
  });
  document.addEventListener("dragleave", (e) => {
    if (e.target === document.documentElement || !e.relatedTarget) el.drop.classList.remove("over");
  });
  document.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault(); // never let the browser navigate to the dropped file
    el.drop.classList.remove("over");
    const f = e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) searchPhoto(f);
  });

  document.addEventListener("paste", (e) => {
    const data = e.clipboardData;
    if (!data) return;
    let file = null;
    const items = data.items || [];
    for (let i = 0; i < items.length && !file; i++) {
      if (items[i].kind === "file" && items[i].type.startsWith("image/")) file = items[i].getAsFile();
    }
    if (!file && data.files && data.files.length && data.files[0].type.startsWith("image/")) file = data.files[0];
    if (!file) return; // plain text: let it paste (into the article box, say)
    e.preventDefault();
    searchPhoto(file);
  });

  el.refineForm.addEventListener("submit", (e) => {
    e.preventDefault();
    refineObject(el.refine.value);
  });

  el.articleForm.addEventListener("submit", (e) => {
    e.preventDefault();
    searchArticle(el.article.value);
  });

  el.apply.addEventListener("click", () => { if (state.last) run(state.last); });
})();
