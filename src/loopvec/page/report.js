// loopvec's interactive report: shows one view at a time, binds each <select> to the Vega
// parameter of its name, keeps the view and its selections in the URL's hash
// (#view=speedup&a=numba_fused&b=numpy_vectorized&threads=2...), and sorts the tables.
// It computes no statistic: every number comes from Python, in the page's data.
"use strict";
document.documentElement.classList.add("js");

// The data comes as columns (field -> values): back into rows, as Vega takes them.
const rows = (columns) => {
  const fields = Object.keys(columns);
  const count = fields.length ? columns[fields[0]].length : 0;
  return Array.from({ length: count }, (_, i) => Object.fromEntries(fields.map((f) => [f, columns[f][i]])));
};
const DATA = Object.fromEntries(
  Object.entries(JSON.parse(document.getElementById("loopvec-data").textContent)).map(([k, v]) => [k, rows(v)]),
);
const SPECS = JSON.parse(document.getElementById("loopvec-specs").textContent);
// The dataset of the time view: cells and cost-model points, in one facet per n.
const DATASETS = { ...DATA, time: (DATA.cells || []).concat(DATA.models || []) };
const embedded = {}; // view name -> Promise of its Vega view

const sections = () => [...document.querySelectorAll("section.view")];
const selects = (section) => [...section.querySelectorAll("select[data-param]")];
const valueOf = (select) => ("number" in select.dataset ? Number(select.value) : select.value);

function embed(section) {
  const name = section.dataset.view;
  if (!(name in SPECS)) return Promise.resolve(null);
  if (!embedded[name]) {
    const spec = structuredClone(SPECS[name]);
    spec.datasets = DATASETS;
    // The parameters start at the selects' values, so a restored hash draws once.
    for (const select of selects(section)) {
      const param = (spec.params || []).find((p) => p.name === select.dataset.param);
      if (param) param.value = valueOf(select);
    }
    const target = section.querySelector(".chart");
    embedded[name] = vegaEmbed(target, spec, { renderer: "svg", actions: false })
      .then((result) => result.view);
  }
  return embedded[name];
}

function writeHash(section) {
  const state = new URLSearchParams({ view: section.dataset.view });
  for (const select of selects(section)) state.set(select.dataset.param, select.value);
  history.replaceState(null, "", "#" + state.toString());
}

function show(name) {
  const section = sections().find((s) => s.dataset.view === name) || sections()[0];
  for (const s of sections()) s.classList.toggle("active", s === section);
  for (const button of document.querySelectorAll("nav button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === section.dataset.view));
  }
  return section;
}

async function restore() {
  const state = new URLSearchParams(location.hash.slice(1));
  const section = show(state.get("view"));
  const changed = [];
  for (const select of selects(section)) {
    const wanted = state.get(select.dataset.param);
    if (wanted !== null && [...select.options].some((o) => o.value === wanted)) {
      if (select.value !== wanted) changed.push(select);
      select.value = wanted;
    }
  }
  const view = await embed(section);
  if (view) {
    for (const select of changed) view.signal(select.dataset.param, valueOf(select));
    await view.runAsync();
  }
  writeHash(section);
  document.body.dataset.ready = section.dataset.view;
}

for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    writeHash(show(button.dataset.view));
    restore();
  });
}
for (const section of sections()) {
  for (const select of selects(section)) {
    select.addEventListener("change", async () => {
      const view = await embed(section);
      if (view) await view.signal(select.dataset.param, valueOf(select)).runAsync();
      writeHash(section);
    });
  }
}
window.addEventListener("hashchange", restore);

// Sortable tables: a click on a column's head sorts by the cells' data-key (numbers as numbers).
for (const table of document.querySelectorAll("table.sortable")) {
  const heads = [...table.tHead.rows[0].cells];
  heads.forEach((head, column) => {
    head.addEventListener("click", () => {
      const ascending = head.getAttribute("aria-sort") !== "ascending";
      for (const h of heads) h.removeAttribute("aria-sort");
      head.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const key = (row) => {
        const text = row.cells[column].dataset.key ?? row.cells[column].textContent;
        const number = Number(text);
        return text !== "" && !Number.isNaN(number) ? number : text;
      };
      const rows = [...table.tBodies[0].rows];
      rows.sort((x, y) => {
        const [a, b] = [key(x), key(y)];
        const order = typeof a === typeof b ? (a < b ? -1 : a > b ? 1 : 0) : typeof a === "number" ? -1 : 1;
        return ascending ? order : -order;
      });
      table.tBodies[0].append(...rows);
    });
  });
}

restore();
