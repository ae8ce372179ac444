// The auditor page: who is signed in and whether the log's hash chain is intact; hook calls filtered
// and paged; one call in full (what the clinician was shown, on what evidence, under which knowledge
// version, and what the clinician did); cards per rule; exports. Every value from the log is set as
// text (textContent / text nodes); only card detail HTML is parsed, through detailFragment().

import { ruleChart } from "./chart.js";
import { detailFragment, fill, formatDate, formatTime, h, none, plural, safeUrl } from "./dom.js";

const FILTERS = ["start", "end", "patient", "user", "service", "rule", "indicator", "outcome"];
const PAGE_SIZES = [25, 50, 100];
const INDICATORS = { info: "Info", warning: "Warning", critical: "Critical" };
const OUTCOMES = { accepted: "Accepted", overridden: "Overridden", none: "No response" };
const SYSTEMS = {
  "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
  "http://snomed.info/sct": "SNOMED CT",
  "http://loinc.org": "LOINC",
};

const $ = (selector) => document.querySelector(selector);
const state = { filters: {}, page: 1, pageSize: 25, call: null, total: 0 };
let listRequest = 0;
let detailRequest = 0;

// -- talking to the API --------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The API answers 401 with `WWW-Authenticate: Basic`, on which a browser holds a credentialed fetch
// open for its own sign-in prompt. So before calling it the page makes sure the session is alive,
// asking /audit/ (which redirects when it is not) without following the redirect.
const SESSION_RECHECK_MS = 30_000;
let sessionCheckedAt = 0;
let sessionCheck = null;

function toSignIn() {
  window.location.replace("/audit/login?expired=1");
}

function ensureSession() {
  if (Date.now() - sessionCheckedAt < SESSION_RECHECK_MS) return Promise.resolve();
  if (!sessionCheck) {
    sessionCheck = fetch("/audit/", { redirect: "manual", cache: "no-store", credentials: "same-origin" })
      .then((response) => {
        if (response.type === "opaqueredirect" || response.status === 401 || response.status === 303) {
          toSignIn();
          throw new ApiError(401, "Your session has ended: sign in again.");
        }
        sessionCheckedAt = Date.now();
      })
      .finally(() => {
        sessionCheck = null;
      });
  }
  return sessionCheck;
}

async function api(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  await ensureSession();
  const response = await fetch(url, {
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json", "X-Requested-With": "audit-page" },
  });
  if (response.status === 401) {
    toSignIn();
    throw new ApiError(401, "Your session has ended: sign in again.");
  }
  if (!response.ok) throw new ApiError(response.status, await problemText(response));
  return response.json();
}

async function problemText(response) {
  try {
    const body = await response.json();
    const issues = (body.issue || []).map((issue) => issue.diagnostics).filter(Boolean);
    if (issues.length) return `${response.status}: ${issues.join("; ")}`;
    if (body.detail) return `${response.status}: ${typeof body.detail === "string" ? body.detail : "invalid request"}`;
  } catch {
    // not JSON
  }
  return `HTTP ${response.status}`;
}

function showError(where, error) {
  if (error instanceof ApiError && error.status === 401) return;
  fill(where, h("p", { class: "alert error", role: "alert" }, `Could not load this: ${error.message}`));
}

/** A datetime-local value (UTC by the page's convention) as the API's ISO time. */
function apiTime(value) {
  if (!value) return undefined;
  return `${value.length === 16 ? `${value}:00` : value}Z`;
}

function rangeParams() {
  return { start: apiTime(state.filters.start), end: apiTime(state.filters.end) };
}

// -- the address bar holds the query, so a view can be bookmarked and Back works --------------------
function readLocation() {
  const params = new URLSearchParams(window.location.search);
  state.filters = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  state.page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
  const size = Number.parseInt(params.get("page_size") || "25", 10);
  state.pageSize = PAGE_SIZES.includes(size) ? size : 25;
  state.call = params.get("call") || null;
}

function writeLocation(push) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (state.filters[name]) params.set(name, state.filters[name]);
  if (state.page > 1) params.set("page", String(state.page));
  if (state.pageSize !== 25) params.set("page_size", String(state.pageSize));
  if (state.call) params.set("call", state.call);
  const query = params.toString();
  const url = `${window.location.pathname}${query ? `?${query}` : ""}`;
  if (url !== `${window.location.pathname}${window.location.search}`) {
    window.history[push ? "pushState" : "replaceState"](null, "", url);
  }
}

function formToState() {
  const form = $("#filters");
  for (const name of FILTERS) state.filters[name] = form.elements[name].value.trim();
}

function stateToForm() {
  const form = $("#filters");
  for (const name of FILTERS) {
    const field = form.elements[name];
    const value = state.filters[name];
    if (field.tagName === "SELECT" && value && ![...field.options].some((o) => o.value === value)) {
      field.append(h("option", { value }, value));
    }
    field.value = value;
  }
  $("#page-size").value = String(state.pageSize);
}

// -- header --------------------------------------------------------------------------------------
async function loadAuditor() {
  try {
    const me = await api("/audit/api/me");
    $("#auditor-name").textContent = me.auditor;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) $("#auditor-name").textContent = "unknown";
  }
}

async function loadChain() {
  const box = $("#chain-status");
  box.className = "chain chain-pending";
  fill(box, "Checking the log's hash chain…");
  try {
    const result = await api("/audit/api/verify");
    if (result.ok) {
      box.className = "chain chain-ok";
      box.setAttribute("role", "status");
      fill(box, h("span", { class: "chain-icon", "aria-hidden": "true" }, "✓"), `Log intact: ${plural(result.records, "record")}`);
    } else {
      box.className = "chain chain-bad";
      box.setAttribute("role", "alert");
      const where = result.first_bad_seq == null ? "" : ` at record #${result.first_bad_seq}`;
      fill(
        box,
        h("span", { class: "chain-icon", "aria-hidden": "true" }, "✗"),
        h("strong", {}, `Log NOT intact${where}`),
        `: ${result.problem || "the hash chain does not verify"} (${plural(result.records, "record")} checked)`,
      );
    }
  } catch (error) {
    box.className = "chain chain-bad";
    fill(box, `Could not check the hash chain: ${error.message}`);
  }
}

// -- filter choices ------------------------------------------------------------------------------
const seenServices = new Set();

function rememberServices(items) {
  const list = $("#service-ids");
  for (const item of items) {
    if (item.serviceId && !seenServices.has(item.serviceId)) {
      seenServices.add(item.serviceId);
      list.append(h("option", { value: item.serviceId }));
    }
  }
}

function fillRuleChoices(rows) {
  const select = $("#f-rule");
  const current = state.filters.rule;
  const ids = new Set(rows.map((row) => row.ruleId));
  if (current) ids.add(current);
  fill(select, h("option", { value: "" }, "Any rule"), [...ids].sort().map((id) => h("option", { value: id }, id)));
  select.value = current;
}

// -- the list ------------------------------------------------------------------------------------
function indicatorBadge(indicator) {
  const known = Object.hasOwn(INDICATORS, indicator);
  return h("span", { class: `badge badge-${known ? indicator : "unknown"}` }, known ? INDICATORS[indicator] : String(indicator));
}

function outcomeLabel(outcome) {
  const key = outcome || "none";
  return h("span", { class: `response response-${Object.hasOwn(OUTCOMES, key) ? key : "none"}` }, OUTCOMES[key] || String(key));
}

function statusBadge(status) {
  if (status === null || status === undefined) return none("no status");
  return h("span", { class: `http ${status >= 400 ? "http-bad" : "http-ok"}` }, String(status));
}

function cardsCell(cards) {
  if (!cards.length) return h("span", { class: "muted" }, "No cards");
  return h(
    "ul",
    { class: "card-chips" },
    cards.map((card) =>
      h("li", {}, indicatorBadge(card.indicator), " ", h("span", { class: "mono rule-id" }, card.ruleId), " ", outcomeLabel(card.outcome)),
    ),
  );
}

function callRow(item) {
  const open = h(
    "button",
    { type: "button", class: "row-open", "aria-controls": "detail", onclick: () => openCall(item.recordId, true) },
    formatTime(item.recordedAt),
    h("span", { class: "visually-hidden" }, ": show this call in full"),
  );
  const row = h(
    "tr",
    { dataset: { recordId: item.recordId }, class: item.recordId === state.call ? "selected" : null },
    h("td", {}, open),
    h("td", { class: "mono" }, item.serviceId || ""),
    h("td", { class: "mono" }, item.patientId || none("none")),
    h("td", { class: "mono" }, item.userId || none("none")),
    h("td", {}, statusBadge(item.httpStatus)),
    h("td", {}, cardsCell(item.cards || [])),
  );
  if (item.recordId === state.call) row.setAttribute("aria-current", "true");
  row.addEventListener("click", (event) => {
    if (!event.target.closest("button, a") && !window.getSelection().toString()) open.click();
  });
  return row;
}

async function loadList() {
  const ticket = ++listRequest;
  const body = $("#calls tbody");
  $("#calls").setAttribute("aria-busy", "true");
  $("#calls-status").textContent = "Loading…";
  try {
    const data = await api("/audit/api/invocations", {
      ...state.filters,
      ...rangeParams(),
      page: state.page,
      page_size: state.pageSize,
    });
    if (ticket !== listRequest) return;
    state.total = data.total;
    rememberServices(data.items);
    const pages = Math.max(1, Math.ceil(data.total / state.pageSize));
    if (data.items.length) fill(body, data.items.map(callRow));
    else fill(body, h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No hook calls match these filters.")));
    const filtered = FILTERS.some((name) => state.filters[name]);
    $("#calls-status").textContent = filtered
      ? `${plural(data.total, "call")} ${data.total === 1 ? "matches" : "match"} the filters`
      : `${plural(data.total, "call")} in the log`;
    $("#page-info").textContent = `Page ${state.page} of ${pages}, ${plural(data.total, "call")}`;
    $("#prev").disabled = state.page <= 1;
    $("#next").disabled = state.page >= pages;
    fill($("#calls-error"));
  } catch (error) {
    if (ticket !== listRequest) return;
    fill(body);
    $("#calls-status").textContent = "";
    showError($("#calls-error"), error);
  } finally {
    if (ticket === listRequest) $("#calls").removeAttribute("aria-busy");
  }
}

function markSelected() {
  for (const row of document.querySelectorAll("#calls tbody tr")) {
    const selected = row.dataset.recordId === state.call;
    row.classList.toggle("selected", selected);
    if (selected) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  }
}

// -- one call in full ----------------------------------------------------------------------------
function fact(label, ...value) {
  const content = value.filter((v) => v !== null && v !== undefined && v !== "");
  return [h("dt", {}, label), h("dd", {}, content.length ? content : none())];
}

function codeText(coding) {
  const system = SYSTEMS[coding.system] || coding.system || "";
  return `${system ? `${system} ` : ""}${coding.code || "?"}`;
}

function draftOrders(orders) {
  if (!orders || !orders.length) return null;
  return h(
    "ul",
    { class: "plain" },
    orders.map((order) =>
      h(
        "li",
        {},
        h("span", { class: "mono" }, order.reference || "?"),
        order.status ? ` (${order.status})` : "",
        (order.codes || []).length ? ` — ${order.codes.map(codeText).join(", ")}` : "",
        order.medicationReference ? ` — medication ${order.medicationReference}` : "",
      ),
    ),
  );
}

function callerText(caller) {
  if (!caller) return null;
  const parts = [
    ["issuer", caller.iss],
    ["tenant", caller.tenant],
    ["token id", caller.jti],
    ["key id", caller.kid],
  ].filter(([, value]) => value);
  return parts.length ? parts.map(([name, value]) => `${name} ${value}`).join(", ") : null;
}

function latencyText(ms) {
  if (typeof ms !== "number") return null;
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms * 10) / 10} ms`;
}

function callFacts(found) {
  const r = found.record;
  return h(
    "dl",
    { class: "facts" },
    fact("Service", h("span", { class: "mono" }, r.serviceId || "")),
    fact("Hook", r.hook),
    fact("Hook instance", r.hookInstance ? h("span", { class: "mono" }, r.hookInstance) : null),
    fact("Request received", formatTime(r.receivedAt)),
    fact("Response sent", formatTime(r.respondedAt)),
    fact("Latency", latencyText(r.latencyMs)),
    fact("HTTP status", statusBadge(r.httpStatus)),
    fact("Knowledge version", r.knowledgeVersion ? h("span", { class: "mono" }, r.knowledgeVersion) : null),
    fact("User", r.userId ? h("span", { class: "mono" }, r.userId) : null),
    fact("Patient", r.patientId ? h("span", { class: "mono" }, r.patientId) : null),
    fact("Encounter", r.encounterId ? h("span", { class: "mono" }, r.encounterId) : null),
    fact("Caller (EHR token)", callerText(r.caller)),
    fact("Draft orders", draftOrders(r.draftOrders)),
    fact(
      "Palbociclib orders checked",
      (r.palbociclibOrders || []).length
        ? h("ul", { class: "plain" }, r.palbociclibOrders.map((ref) => h("li", { class: "mono" }, ref)))
        : null,
    ),
    fact("Logged at", formatTime(r.recordedAt)),
    fact("Log record", h("span", { class: "mono" }, `#${found.seq} · ${found.recordId}`)),
    fact("Chain digest", h("span", { class: "mono digest" }, found.chainDigest || "")),
  );
}

function errorBlock(error) {
  if (!error) return null;
  const details = Array.isArray(error.details) ? error.details : error.details ? [JSON.stringify(error.details)] : [];
  return h(
    "div",
    { class: "alert error" },
    h("h4", {}, "The call failed"),
    h("p", {}, String(error.message || "error")),
    details.length ? h("ul", {}, details.map((d) => h("li", {}, String(d)))) : null,
  );
}

function dataSection(r) {
  const prefetch = Object.entries(r.prefetch || {});
  const missing = prefetch.filter(([, outcome]) => outcome.state !== "prefetched");
  const skipped = Object.entries(r.skippedChecks || {});
  const queries = r.fhirQueries || [];
  const stateTable = (entries, caption) =>
    h(
      "table",
      { class: "data compact" },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Prefetch key"), h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Reason"))),
      h(
        "tbody",
        {},
        entries.map(([key, outcome]) =>
          h(
            "tr",
            {},
            h("th", { scope: "row", class: "mono" }, key),
            h("td", {}, h("span", { class: outcome.state === "prefetched" ? "" : "state-missing" }, outcome.state || "?")),
            h("td", {}, outcome.reason || ""),
          ),
        ),
      ),
    );
  return h(
    "section",
    { class: "sub", "aria-labelledby": "data-heading" },
    h("h3", { id: "data-heading" }, "Patient data the service had"),
    prefetch.length
      ? h(
          "p",
          {},
          `${prefetch.length - missing.length} of ${plural(prefetch.length, "prefetch key")} supplied by the EHR`,
          missing.length ? `; ${missing.length} not: ${missing.map(([key]) => key).join(", ")}.` : ".",
        )
      : h("p", { class: "muted" }, "No patient data was read (the call stopped before that)."),
    missing.length ? stateTable(missing, "Prefetch keys the EHR did not supply") : null,
    prefetch.length
      ? h("details", {}, h("summary", {}, `All ${plural(prefetch.length, "prefetch key")}`), stateTable(prefetch, "Every prefetch key"))
      : null,
    h("h4", {}, "FHIR queries made by the service"),
    queries.length
      ? h(
          "table",
          { class: "data compact" },
          h(
            "thead",
            {},
            h("tr", {}, ["Key", "Query", "HTTP status", "Outcome", "Time", "Entries"].map((t) => h("th", { scope: "col" }, t))),
          ),
          h(
            "tbody",
            {},
            queries.map((q) =>
              h(
                "tr",
                {},
                h("td", { class: "mono" }, q.key || ""),
                h("td", { class: "mono wrap" }, q.url || ""),
                h("td", {}, q.status == null ? "" : String(q.status)),
                h("td", {}, q.outcome || ""),
                h("td", {}, latencyText(q.elapsedMs) || ""),
                h("td", {}, q.entries == null ? "" : String(q.entries)),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "None: the service queried no FHIR server."),
    h("h4", {}, "Checks that could not run"),
    skipped.length
      ? h(
          "ul",
          { class: "skipped" },
          skipped.map(([check, reason]) => h("li", {}, h("span", { class: "mono" }, check), `: ${reason}`)),
        )
      : h("p", { class: "muted" }, "None: every check ran."),
  );
}

function feedbackTable(card) {
  const history = card.feedback || [];
  if (!history.length) return h("p", { class: "muted" }, "No response from the clinician was recorded for this card.");
  const labels = Object.fromEntries((card.suggestions || []).map((s) => [s.uuid, s.label]));
  return h(
    "table",
    { class: "data feedback" },
    h("caption", {}, "Clinician response, oldest first (the last one counts)"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Recorded", "Response", "Suggestions accepted", "Override reason", "Clinician's comment", "Time of response (EHR)"].map(
          (t) => h("th", { scope: "col" }, t),
        ),
      ),
    ),
    h(
      "tbody",
      {},
      history.map((entry) => {
        const fb = entry.feedback || {};
        const reason = (fb.overrideReason || {}).reason || null;
        const comment = (fb.overrideReason || {}).userComment;
        const accepted = (fb.acceptedSuggestions || []).map((s) => labels[s.id] || `unknown suggestion ${s.id}`);
        return h(
          "tr",
          {},
          h("td", {}, formatTime(entry.recordedAt)),
          h("td", {}, outcomeLabel(fb.outcome)),
          h("td", {}, accepted.length ? h("ul", { class: "plain" }, accepted.map((l) => h("li", {}, l))) : none("—")),
          h(
            "td",
            { class: "override-reason" },
            reason ? [reason.display || reason.code, reason.code && reason.display ? h("span", { class: "muted mono" }, ` (${reason.code})`) : null] : none("—"),
          ),
          h("td", { class: "override-comment" }, comment ? comment : none("—")),
          h("td", {}, formatTime(fb.outcomeTimestamp)),
        );
      }),
    ),
  );
}

function cardArticle(card, index) {
  const source = card.source || {};
  const href = safeUrl(source.url);
  const headingId = `card-${index}-summary`;
  const evidence = card.evidence || [];
  return h(
    "article",
    { class: `cds-card cds-card-${Object.hasOwn(INDICATORS, card.indicator) ? card.indicator : "unknown"}`, "aria-labelledby": headingId, dataset: { rule: card.ruleId || "" } },
    h(
      "div",
      { class: "card-head" },
      indicatorBadge(card.indicator),
      h("span", { class: "mono rule-id" }, card.ruleId || ""),
      source.topic && source.topic.display ? h("span", { class: "muted" }, source.topic.display) : null,
    ),
    h("h4", { id: headingId, class: "card-summary" }, card.summary || ""),
    h("div", { class: "card-detail" }, detailFragment(card.detailHtml)),
    source.label || href
      ? h("p", { class: "card-source" }, "Source: ", href ? h("a", { href, rel: "noopener noreferrer" }, source.label || href) : source.label)
      : null,
    h(
      "div",
      { class: "card-columns" },
      h(
        "div",
        {},
        h("h5", {}, "Suggestions offered"),
        (card.suggestions || []).length
          ? h("ul", {}, card.suggestions.map((s) => h("li", {}, s.label || "")))
          : h("p", { class: "muted" }, "None"),
      ),
      h(
        "div",
        {},
        h("h5", {}, "Override reasons offered"),
        (card.overrideReasons || []).length
          ? h("ul", {}, card.overrideReasons.map((r) => h("li", {}, r.display || r.code || "")))
          : h("p", { class: "muted" }, "None"),
      ),
    ),
    h("h5", {}, "Evidence from the patient record"),
    evidence.length
      ? h(
          "table",
          { class: "data compact evidence" },
          h("thead", {}, h("tr", {}, ["Finding", "Date", "Record"].map((t) => h("th", { scope: "col" }, t)))),
          h(
            "tbody",
            {},
            evidence.map((e) =>
              h("tr", {}, h("td", {}, e.description || ""), h("td", {}, formatDate(e.date)), h("td", { class: "mono" }, e.reference || "")),
            ),
          ),
        )
      : h("p", { class: "muted evidence-none" }, "No evidence records were cited (the card is about something absent)."),
    h("h5", {}, "What the clinician did"),
    feedbackTable(card),
    h("p", { class: "card-uuid muted" }, "Card ", h("span", { class: "mono" }, card.uuid || "")),
  );
}

function renderDetail(found) {
  const r = found.record;
  const cards = r.cards || [];
  fill(
    $("#detail-heading"),
    `Call at ${formatTime(r.recordedAt || r.receivedAt)}`,
    r.patientId ? ` — patient ${r.patientId}` : "",
  );
  fill(
    $("#detail-body"),
    errorBlock(r.error),
    callFacts(found),
    dataSection(r),
    h(
      "section",
      { class: "sub", "aria-labelledby": "cards-heading" },
      h("h3", { id: "cards-heading" }, cards.length ? `Cards shown to the clinician (${cards.length})` : "Cards shown to the clinician"),
      cards.length ? cards.map(cardArticle) : h("p", { class: "muted" }, "None: the service returned no cards for this call."),
    ),
  );
}

async function openCall(recordId, userAction) {
  const ticket = ++detailRequest;
  state.call = recordId;
  if (userAction) writeLocation(true);
  markSelected();
  const panel = $("#detail");
  panel.hidden = false;
  fill($("#detail-heading"), "Loading the call…");
  fill($("#detail-body"));
  try {
    const found = await api(`/audit/api/invocations/${encodeURIComponent(recordId)}`);
    if (ticket !== detailRequest) return;
    renderDetail(found);
  } catch (error) {
    if (ticket !== detailRequest) return;
    fill($("#detail-heading"), "Call not available");
    showError($("#detail-body"), error);
  }
  if (userAction) {
    panel.scrollIntoView({ block: "start" });
    $("#detail-heading").focus({ preventScroll: true });
  }
}

function closeCall() {
  const previous = state.call;
  state.call = null;
  detailRequest++;
  $("#detail").hidden = true;
  writeLocation(true);
  markSelected();
  const row = previous && document.querySelector(`#calls tbody tr[data-record-id="${CSS.escape(previous)}"] .row-open`);
  (row || $("#calls-heading")).focus();
}

// -- cards per rule ------------------------------------------------------------------------------
function rangeText() {
  const { start, end } = state.filters;
  if (start && end) return `from ${start.replace("T", " ")} to ${end.replace("T", " ")} UTC`;
  if (start) return `from ${start.replace("T", " ")} UTC on`;
  if (end) return `before ${end.replace("T", " ")} UTC`;
  return "all dates";
}

function summaryTable(rows) {
  return h(
    "table",
    { class: "data summary" },
    h("caption", {}, "The same counts, with the reasons given for overrides"),
    h(
      "thead",
      {},
      h("tr", {}, ["Rule", "Fired", "Accepted", "Overridden", "No response", "Override reasons"].map((t) => h("th", { scope: "col" }, t))),
    ),
    h(
      "tbody",
      {},
      rows.map((row) => {
        const reasons = Object.entries(row.overrideReasons || {}).sort((a, b) => b[1] - a[1]);
        return h(
          "tr",
          { dataset: { rule: row.ruleId } },
          h(
            "th",
            { scope: "row" },
            h(
              "button",
              {
                type: "button",
                class: "linkish mono",
                title: `Show the calls where ${row.ruleId} fired`,
                onclick: () => {
                  $("#f-rule").value = row.ruleId;
                  $("#filters").requestSubmit();
                  $("#calls-heading").focus();
                },
              },
              row.ruleId,
            ),
          ),
          h("td", { class: "num" }, String(row.fired)),
          h("td", { class: "num" }, String(row.accepted)),
          h("td", { class: "num" }, String(row.overridden)),
          h("td", { class: "num" }, String(row.noResponse)),
          h(
            "td",
            { class: "reasons" },
            reasons.length ? h("ul", { class: "plain" }, reasons.map(([reason, count]) => h("li", {}, `${reason} (${count})`))) : none("—"),
          ),
        );
      }),
    ),
  );
}

async function loadSummary() {
  fill($("#rules-range"), `Cards issued, ${rangeText()}.`);
  try {
    const rows = await api("/audit/api/summary", rangeParams());
    fillRuleChoices(rows);
    if (!rows.length) {
      fill($("#rule-chart"), h("p", { class: "muted" }, "No cards were issued in this date range."));
      fill($("#rule-table"));
      return;
    }
    fill($("#rule-chart"), ruleChart(rows));
    fill($("#rule-table"), summaryTable(rows));
  } catch (error) {
    showError($("#rule-chart"), error);
  }
}

// -- exports -------------------------------------------------------------------------------------
function updateExports() {
  for (const link of document.querySelectorAll("a[data-export]")) {
    const url = new URL("/audit/api/export", window.location.origin);
    url.searchParams.set("format", link.dataset.export);
    for (const [name, value] of Object.entries(rangeParams())) if (value) url.searchParams.set(name, value);
    link.href = `${url.pathname}${url.search}`;
  }
  fill($("#export-range"), `Every call ${rangeText() === "all dates" ? "in the log" : rangeText()}; the other filters do not apply to exports.`);
}

// -- wiring --------------------------------------------------------------------------------------
function checkRange() {
  const start = $("#f-start");
  const end = $("#f-end");
  end.setCustomValidity(start.value && end.value && end.value <= start.value ? "'To' must be after 'From'." : "");
  return end.reportValidity();
}

function refreshAll({ summary }) {
  stateToForm();
  updateExports();
  loadList();
  if (summary) loadSummary();
  if (state.call) openCall(state.call, false);
  else $("#detail").hidden = true;
}

function init() {
  readLocation();
  stateToForm();

  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!checkRange()) return;
    const before = `${state.filters.start}|${state.filters.end}`;
    formToState();
    state.page = 1;
    writeLocation(true);
    updateExports();
    loadList();
    if (`${state.filters.start}|${state.filters.end}` !== before) loadSummary();
  });
  $("#filters").addEventListener("reset", () => {
    window.setTimeout(() => {
      const rangeChanged = state.filters.start || state.filters.end;
      for (const name of FILTERS) state.filters[name] = "";
      $("#f-end").setCustomValidity("");
      state.page = 1;
      writeLocation(true);
      updateExports();
      loadList();
      if (rangeChanged) loadSummary();
    });
  });
  $("#prev").addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    writeLocation(true);
    loadList();
  });
  $("#next").addEventListener("click", () => {
    state.page += 1;
    writeLocation(true);
    loadList();
  });
  $("#page-size").addEventListener("change", (event) => {
    state.pageSize = Number.parseInt(event.target.value, 10);
    state.page = 1;
    writeLocation(true);
    loadList();
  });
  $("#detail-close").addEventListener("click", closeCall);
  $("#chain-recheck").addEventListener("click", loadChain);
  window.addEventListener("popstate", () => {
    readLocation();
    refreshAll({ summary: true });
  });

  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      sessionCheckedAt = 0; // back from the browser's page cache: maybe signed out since
      ensureSession().catch(() => {});
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") ensureSession().catch(() => {});
  });

  loadAuditor();
  loadChain();
  refreshAll({ summary: true });
}

init();
