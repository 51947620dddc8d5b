"use strict";
(function () {
  const config = JSON.parse(document.getElementById("config").textContent);
  const STEPS = ["inventory", "shadow_pool", "baseline", "apply_to_shadows", "bake", "decided",
    "awaiting_approval", "production", "watch", "done"];
  const LABELS = {inventory: "Inventory", waiting_for_targets: "Waiting for targets", shadow_pool: "Shadow pool",
    baseline: "Baseline", apply_to_shadows: "Apply to shadows", bake: "Bake", decided: "Decided",
    awaiting_approval: "Awaiting approval", production: "Production", watch: "Watch", done: "Done",
    halted_before_production: "Halted before production", halted_in_production: "Halted in production",
    aborted: "Aborted", refused: "Refused", failed: "Failed"};
  const TONE = {done: "ok", awaiting_approval: "warn", halted_before_production: "bad",
    halted_in_production: "bad", aborted: "bad", refused: "bad", failed: "bad"};
  const LANES = ["shadows", "bake", "gate", "waves", "watch", "rollbacks", "capacity"];
  const LANE_COLOR = {shadows: "#8250df", bake: "#0969da", gate: "#9a6700", waves: "#1a7f37",
    watch: "#116329", rollbacks: "#cf222e", capacity: "#bf8700"};
  const TERMINAL = ["Completed", "Failed", "Terminated"];
  const SVGNS = "http://www.w3.org/2000/svg";
  const main = document.getElementById("main");
  let actionsKey = null;
  let timer = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v); else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = String(v); else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) if (c) node.append(c);
    return node;
  }
  function section(id, title) {
    let s = document.getElementById(id);
    if (!s) {
      s = el("section", {id: id, "aria-labelledby": id + "-h"});
      main.append(s);
    }
    s.replaceChildren(el("h2", {id: id + "-h", text: title}));
    return s;
  }
  function fmt(v) { return v === null || v === undefined || v === "" ? "–" : String(v); }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %"; }
  function phaseBadge(phase) {
    return el("span", {class: "badge " + (TONE[phase] || "info"), text: LABELS[phase] || fmt(phase)});
  }
  function base() { return location.pathname.replace(/\/+$/, ""); }
  function table(headers, rows, numeric) {
    return el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h, i) =>
        el("th", {scope: "col", class: numeric && numeric[i] ? "num" : null, text: h})))),
      el("tbody", {}, rows.map(r => el("tr", {}, r.map((c, i) =>
        el("td", {class: numeric && numeric[i] ? "num" : null}, c instanceof Node ? c : fmt(c)))))));
  }
  function scroll(label, child) {
    return el("div", {class: "scroll", tabindex: "0", role: "region", "aria-label": label}, child);
  }

  // ------------------------------------------------------------------ list page
  function renderList(data) {
    const s = section("rollouts", "Rollouts (" + data.count + ")");
    const rows = data.rollouts.map(r => [
      el("a", {href: base() + "/" + encodeURIComponent(r.rollout_id) + location.search, text: r.rollout_id}),
      phaseBadge(r.phase), r.runtime_status, r.created_at, r.last_updated_at]);
    s.append(rows.length ? table(["rollout", "phase", "runtime", "created", "updated"], rows)
      : el("p", {text: "No rollouts in this period."}));
  }

  // ------------------------------------------------------------------ detail page
  function progressOf(phase, cs) {
    const i = STEPS.indexOf(phase);
    if (phase === "done") return 1;
    if (i < 0) return null;
    let f = i / (STEPS.length - 1);
    if (phase === "production" && cs.waves) f += ((cs.wave || 1) - 1) / cs.waves / (STEPS.length - 1);
    return f;
  }
  function renderOverview(d) {
    const cs = d.custom_status || {};
    const ro = d.rollout || {};
    document.getElementById("title").textContent = "Rollout " + d.rollout_id;
    const s = section("overview", "Where it stands");
    const phase = d.phase || (d.runtime_status === "Pending" ? "inventory" : null);
    const facts = [["phase", phaseBadge(phase)], ["runtime", fmt(d.runtime_status)],
      ["VMs", fmt(cs.vms)], ["strata", fmt(cs.strata)], ["shadows", fmt(cs.shadows)],
      ["wave", cs.waves ? (cs.wave || 0) + " of " + cs.waves : "–"], ["waves done", fmt(cs.waves_done)],
      ["rolled back", fmt(d.view ? d.view.rolled_back_total : cs.rollbacks)], ["started", fmt(ro.started_at)], ["finished", fmt(ro.finished_at)]];
    s.append(el("dl", {class: "summary"}, facts.map(([k, v]) => el("div", {}, el("dt", {text: k}),
      el("dd", {}, v instanceof Node ? v : String(v))))));
    const f = progressOf(phase, cs);
    if (f !== null) {
      s.append(el("div", {class: "progress", role: "progressbar", "aria-label": "rollout progress",
        "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(100 * f))},
        el("div", {style: null, "data-w": String(f)})));
    }
    const cur = STEPS.indexOf(phase);
    s.append(el("ol", {class: "steps", "aria-label": "phases"}, STEPS.map((p, i) => el("li", {
      class: i === cur ? "current" : (cur >= 0 && i < cur ? "done" : null),
      "aria-current": i === cur ? "step" : null, text: LABELS[p]}))));
    const why = [];
    if (cs.reason) why.push(cs.reason);
    if (ro.error) why.push("error: " + ro.error);
    if (ro.refused) why.push("refused: " + ro.refused);
    if (ro.aborted && ro.aborted.by) why.push("aborted by " + ro.aborted.by + ": " + fmt(ro.aborted.reason));
    if (cs.decision && cs.decision.reason) why.push("decision: " + cs.decision.reason);
    for (const w of why) s.append(el("p", {text: w}));
    for (const bar of s.querySelectorAll(".progress > div")) bar.style.width = (100 * bar.dataset.w) + "%";
  }
  function renderActions(d) {
    const cs = d.custom_status || {};
    const running = !TERMINAL.includes(d.runtime_status);
    const atGate = d.phase === "awaiting_approval";
    const mayApprove = config.actions.includes("approve") && atGate && running;
    const mayAbort = config.actions.includes("abort") && running;
    const approval = cs.approval || (d.rollout || {}).approval || null;
    const key = JSON.stringify([mayApprove, mayAbort, atGate, approval]);
    if (key === actionsKey) return;
    actionsKey = key;
    const s = section("actions", atGate ? "Approval gate" : "Operator actions");
    s.className = atGate ? "gate" : "";
    if (approval) {
      const parts = [];
      if (approval.opened_at) parts.push("opened " + approval.opened_at);
      if (approval.timeout_at) parts.push("times out " + approval.timeout_at + " (then " +
        fmt(approval.on_timeout) + ")");
      if (approval.outcome) parts.push("outcome: " + approval.outcome);
      if (approval.by) parts.push("by " + approval.by);
      s.append(el("p", {id: "approval", text: parts.join(" · ")}));
      if (approval.reason) s.append(el("p", {text: approval.reason}));
    }
    if (!mayApprove && !mayAbort) {
      s.append(el("p", {text: running ? "You hold no role that may approve or abort this rollout."
        : "The rollout has ended; nothing to approve or abort."}));
    } else {
      const reason = el("input", {id: "reason", type: "text", name: "reason", autocomplete: "off"});
      const form = el("div", {class: "actions"}, el("label", {for: "reason"}, "Reason (recorded)", reason));
      if (mayApprove) form.append(actionButton("approve", "Approve", reason));
      if (mayAbort) form.append(actionButton("abort", "Abort", reason));
      s.append(form);
    }
    s.append(el("p", {id: "message", role: "status", "aria-live": "polite"}));
  }
  function actionButton(action, label, reason) {
    const b = el("button", {type: "button", class: action, id: action + "-button", text: label});
    b.addEventListener("click", async () => {
      b.disabled = true;
      const msg = document.getElementById("message");
      try {
        const r = await fetch(base() + "/" + action + location.search, {method: "POST",
          headers: {"Content-Type": "application/json", Accept: "application/json"},
          body: JSON.stringify({reason: reason.value || null})});
        const body = await r.json().catch(() => ({}));
        msg.textContent = (r.ok ? "" : "refused (" + r.status + "): ") + fmt(body.reason);
        msg.className = r.ok ? "ok" : "bad";
      } catch (e) {
        msg.textContent = "could not reach the app: " + e;
        msg.className = "bad";
      }
      b.disabled = false;
      refresh();
    });
    return b;
  }
  function renderTimeline(d) {
    const v = d.view;
    const s = section("timeline", "Timeline");
    if (!v) { s.append(el("p", {text: "Nothing recorded yet."})); return; }
    const ends = [v.now_minute, 1].concat(v.spans.map(x => x.end || 0), v.marks.map(m => m.at));
    const span = Math.max.apply(null, ends);
    const W = 1000, left = 90, right = 20, row = 26, top = 10, H = top + row * LANES.length + 30;
    const x = m => left + (W - left - right) * Math.min(m, span) / span;
    const g = svg("svg", {class: "timeline", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-labelledby": "timeline-title timeline-desc"});
    g.append(svg("title", {id: "timeline-title", text: "Timeline of rollout " + d.rollout_id}));
    g.append(svg("desc", {id: "timeline-desc", text: v.spans.map(x => x.label + " from minute " + x.start +
      (x.end === null ? " (running)" : " to " + x.end)).join("; ") || "no phase yet"}));
    LANES.forEach((lane, i) => {
      const y = top + i * row;
      g.append(svg("text", {x: 4, y: y + row / 2 + 4, class: "lane-label", text: lane}));
      g.append(svg("line", {x1: left, x2: W - right, y1: y + row, y2: y + row, class: "axis"}));
    });
    for (const sp of v.spans) {
      const i = LANES.indexOf(sp.lane);
      if (i < 0) continue;
      const x0 = x(sp.start), x1 = x(sp.end === null ? v.now_minute : sp.end);
      const r = svg("rect", {x: x0, y: top + i * row + 5, width: Math.max(2, x1 - x0), height: row - 10,
        fill: LANE_COLOR[sp.lane], "fill-opacity": sp.end === null ? 0.5 : 0.85, rx: 3,
        class: "span span-" + sp.lane, "data-label": sp.label});
      r.append(svg("title", {text: sp.label + ": minute " + sp.start + " to " +
        (sp.end === null ? "now" : sp.end) + (sp.until !== null && sp.until !== undefined && sp.end === null ?
          " (due to end at minute " + sp.until + ", " + fmtMinutes(sp.until - v.now_minute) + " from now)" : "")}));
      g.append(r);
    }
    for (const m of v.marks) {
      const i = LANES.indexOf(m.lane);
      if (i < 0) continue;
      const c = svg("circle", {cx: x(m.at), cy: top + i * row + row / 2, r: 4, fill: LANE_COLOR[m.lane],
        stroke: "#fff", "stroke-width": 1});
      c.append(svg("title", {text: "minute " + m.at + " · " + m.kind + ": " + m.label}));
      g.append(c);
    }
    const axisY = top + row * LANES.length;
    const unit = span > 180 ? 60 : 1, step = niceStep(span / unit / 8);
    for (let t = 0; t <= span / unit + 1e-9; t += step) {
      g.append(svg("text", {x: x(t * unit), y: axisY + 16, "text-anchor": "middle",
        text: t + (unit === 60 ? " h" : " min")}));
    }
    g.append(svg("line", {x1: x(v.now_minute), x2: x(v.now_minute), y1: top, y2: axisY, class: "now",
      "stroke-dasharray": "4 3"}));
    const watching = v.spans.find(x => x.lane === "watch" && x.end === null && x.until !== null);
    s.append(g, el("p", {class: "legend", text: "Bars: shadow pool, baseline and bake, approval gate, " +
      "production waves, production watch, extra instances. Dots: rollbacks, recoveries, scale-outs, halts. " +
      "Dashed line: now (minute " + v.now_minute + ")." + (watching ? " The production watch ends at minute " +
      watching.until + ", " + fmtMinutes(watching.until - v.now_minute) + " from now." : "")}));
  }
  function fmtMinutes(m) {
    const n = Math.max(0, Math.round(m));
    return n >= 120 ? (n / 60).toFixed(1) + " h" : n + " min";
  }
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
    for (const k of [1, 2, 5, 10]) if (k * p >= raw) return k * p;
    return 10 * p;
  }
  function renderStrata(d) {
    const ro = d.rollout || {};
    const s = section("strata", "Strata: shadows, evidence and prediction (" + fmt(ro.strata_total) + ")");
    const rows = (ro.strata || []).map(x => [x.label, x.shadows, x.judge, x.evidence, pct(x.mean_predicted_failure),
      x.vms, x.skipped, x.on_new_config, x.rolled_back]);
    s.append(rows.length ? scroll("strata", table(["stratum", "shadows", "judge", "evidence",
      "predicted failure", "VMs", "skipped", "on new config", "rolled back"], rows,
      [false, true, false, false, true, true, true, true, true])) : el("p", {text: "No strata judged yet."}));
  }
  function renderRollbacks(d) {
    const v = d.view;
    const ro = d.rollout || {};
    const s = section("rolled-back", "VMs rolled back (" + (v ? v.rolled_back_total : 0) + ")");
    const states = Object.entries(ro.rollbacks || {}).map(([k, n]) => k + " " + n).join(", ");
    if (states) s.append(el("p", {text: "by state: " + states}));
    const rows = v ? v.rolled_back.map(r => [r.vm, r.state, r.reason]) : [];
    s.append(rows.length ? scroll("VMs rolled back", table(["VM", "state", "why"], rows))
      : el("p", {text: "No VM rolled back."}));
  }
  function renderCapacity(d) {
    const cs = d.custom_status || {};
    const ro = d.rollout || {};
    const s = section("capacity", "Capacity");
    const extra = (cs.capacity && cs.capacity.extra) || (ro.capacity && ro.capacity.extra) || {};
    const rows = Object.entries(extra).map(([k, n]) => [k.split("/").pop(), typeof n === "object" ?
      JSON.stringify(n) : n]);
    s.append(rows.length ? table(["scale set", "extra instances"], rows, [false, true])
      : el("p", {text: "No extra instances borrowed."}));
  }
  function renderDecisions(d) {
    const v = d.view;
    const list = v ? v.decisions : ((d.rollout || {}).decisions || []);
    const total = v ? v.decisions_total : list.length;
    const s = section("decisions", "Every decision and its reason (" + total + ")");
    s.append(list.length ? scroll("decisions", table(["minute", "decision", "reason"],
      list.map(x => [x.minute, x.kind, x.reason]), [true, false, false]))
      : el("p", {text: "No decision yet."}));
    if (total > list.length) s.append(el("p", {class: "legend", text: "the latest " + list.length + " shown"}));
  }
  function renderDetail(d) {
    renderOverview(d);
    renderActions(d);
    renderTimeline(d);
    renderStrata(d);
    renderRollbacks(d);
    renderCapacity(d);
    renderDecisions(d);
    document.body.dataset.phase = d.phase || "";
    document.body.dataset.runtime = d.runtime_status || "";
  }

  function render(data) {
    if (config.kind === "list") renderList(data); else renderDetail(data);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }
  async function refresh() {
    clearTimeout(timer);
    try {
      const r = await fetch(location.pathname + location.search, {headers: {Accept: "application/json"}});
      if (r.ok) {
        const data = await r.json();
        render(data);
        if (config.kind === "detail" && TERMINAL.includes(data.runtime_status)) return;
      }
    } catch (e) {
      document.getElementById("updated").textContent = "could not refresh: " + e;
    }
    timer = setTimeout(refresh, 1000 * config.refresh_seconds);
  }
  render(JSON.parse(document.getElementById("status").textContent));
  timer = setTimeout(refresh, 1000 * config.refresh_seconds);
}());
