// The per-rule chart: one stacked horizontal bar per rule, its length the cards fired, split into
// accepted, overridden and no response. Inline SVG built with DOM calls (values as text nodes).

const NS = "http://www.w3.org/2000/svg";
export const SEGMENTS = [
  { key: "accepted", label: "Accepted" },
  { key: "overridden", label: "Overridden" },
  { key: "noResponse", label: "No response" },
];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Axis ticks at a round step (1, 2 or 5 times a power of ten); the last one at or above max. */
function ticks(max) {
  const rough = Math.max(1, max / 5);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough);
  const out = [];
  for (let value = 0; value < max + step; value += step) out.push(value);
  return out.filter((value, index) => index === 0 || out[index - 1] < max);
}

/** An <svg> for rows of {ruleId, fired, accepted, overridden, noResponse}. */
export function ruleChart(rows, { titleId = "rule-chart-title", descId = "rule-chart-desc" } = {}) {
  const longest = Math.max(8, ...rows.map((row) => String(row.ruleId).length));
  const labelWidth = Math.min(340, 24 + longest * 7.9); // rule ids are set in a 13px monospace font
  const barWidth = 560;
  const countWidth = 96;
  const rowHeight = 34;
  const top = 44;
  const width = Math.round(labelWidth + barWidth + countWidth);
  const height = top + rows.length * rowHeight + 28;
  const axis = ticks(Math.max(1, ...rows.map((row) => row.fired)));
  const max = axis[axis.length - 1];
  const scale = (value) => (value / max) * barWidth;

  const total = rows.reduce((sum, row) => sum + row.fired, 0);
  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      "aria-labelledby": `${titleId} ${descId}`,
      class: "rule-chart",
    },
    s("title", { id: titleId }, "Cards per rule and the clinicians' responses"),
    s(
      "desc",
      { id: descId },
      `${rows.length} rules, ${total} cards. ` +
        rows
          .map(
            (r) =>
              `${r.ruleId}: fired ${r.fired}, accepted ${r.accepted}, overridden ${r.overridden}, ` +
              `no response ${r.noResponse}.`,
          )
          .join(" "),
    ),
  );

  // Legend
  let x = labelWidth;
  for (const segment of SEGMENTS) {
    svg.append(
      s("rect", { x, y: 10, width: 14, height: 14, rx: 2, class: `seg seg-${segment.key}` }),
      s("text", { x: x + 20, y: 22, class: "legend" }, segment.label),
    );
    x += 20 + segment.label.length * 7.6 + 26;
  }

  // Grid and axis
  const plotBottom = top + rows.length * rowHeight;
  for (const value of axis) {
    const gx = labelWidth + scale(value);
    svg.append(
      s("line", { x1: gx, x2: gx, y1: top - 6, y2: plotBottom, class: "grid" }),
      s("text", { x: gx, y: plotBottom + 18, class: "tick", "text-anchor": "middle" }, value),
    );
  }

  rows.forEach((row, index) => {
    const y = top + index * rowHeight;
    const group = s("g", { class: "bar", "data-rule": row.ruleId });
    group.append(
      s(
        "title",
        {},
        `${row.ruleId}: fired ${row.fired}, accepted ${row.accepted}, overridden ${row.overridden}, ` +
          `no response ${row.noResponse}`,
      ),
      s("text", { x: labelWidth - 10, y: y + 21, class: "rule-label", "text-anchor": "end" }, row.ruleId),
    );
    let offset = labelWidth;
    for (const segment of SEGMENTS) {
      const count = row[segment.key] || 0;
      if (!count) continue;
      const w = scale(count);
      group.append(
        s("rect", { x: offset, y: y + 5, width: w, height: rowHeight - 10, class: `seg seg-${segment.key}` }),
      );
      if (w >= 22) {
        group.append(
          s("text", { x: offset + w / 2, y: y + 21, class: "seg-count", "text-anchor": "middle" }, count),
        );
      }
      offset += w;
    }
    group.append(s("text", { x: offset + 8, y: y + 21, class: "fired" }, `fired ${row.fired}`));
    svg.append(group);
  });
  return svg;
}
