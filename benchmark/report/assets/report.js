// UAD-Bench report: sortable tables, significance matrix picker, volume browser.
// No libraries and no network: everything the page needs is inlined in it.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);

  // ------------------------------------------------------------ sortable tables
  function cellKey(td) {
    if (!td) return null;
    var v = td.getAttribute("data-value");
    if (v !== null) return v === "" ? null : parseFloat(v);
    return td.textContent.trim().toLowerCase();
  }
  function sortTable(table, col, th) {
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
    table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellKey(a.cells[col]), y = cellKey(b.cells[col]);
      if (x === null || (typeof x === "number" && isNaN(x))) return 1;   // missing last
      if (y === null || (typeof y === "number" && isNaN(y))) return -1;
      var c = x < y ? -1 : x > y ? 1 : 0;
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      th.addEventListener("click", function () { sortTable(table, col, th); });
    });
  });

  // ------------------------------------------------------------ significance matrices
  var pick = document.getElementById("sig-select");
  if (pick) {
    var show = function () {
      document.querySelectorAll(".sig-matrix").forEach(function (m) {
        m.hidden = m.getAttribute("data-group") !== pick.value;
      });
    };
    pick.addEventListener("change", show);
    show();
  }

  // ------------------------------------------------------------ volume browser
  var vols = DATA.browser || [];
  var volPick = document.getElementById("browser-volume");
  var srcPick = document.getElementById("browser-source");
  var slider = document.getElementById("slice-slider");
  if (!vols.length || !volPick || !slider) return;

  function current() { return vols[parseInt(volPick.value, 10)]; }
  function render() {
    var vol = current(), k = parseInt(slider.value, 10), src = srcPick.value;
    document.getElementById("slice-label").textContent =
      "axial slice " + vol.slices[k] + " (" + (k + 1) + " of " + vol.slices.length + ")";
    document.querySelectorAll(".browser-volume").forEach(function (div) {
      div.hidden = div.getAttribute("data-volume") !== volPick.value;
    });
    var div = document.querySelector('.browser-volume[data-volume="' + volPick.value + '"]');
    div.querySelectorAll("img[data-layer]").forEach(function (img) {
      var layer = img.getAttribute("data-layer"), e = img.getAttribute("data-entry");
      var frames = e === null ? vol[layer] : vol.entries[parseInt(e, 10)][layer];
      if (layer === "binary") frames = frames[src];
      if (frames) { img.src = frames[k]; img.title = layer + ", slice " + vol.slices[k]; }
    });
    div.querySelectorAll("[data-threshold]").forEach(function (span) {
      var t = vol.entries[parseInt(span.getAttribute("data-threshold"), 10)].thresholds[src];
      span.textContent = t === undefined ? "" : "threshold " + Number(t).toPrecision(3);
    });
  }
  function selectVolume() {
    var vol = current();
    slider.max = String(vol.slices.length - 1);
    slider.value = String(vol.start);
    render();
  }
  volPick.addEventListener("change", selectVolume);
  srcPick.addEventListener("change", render);
  slider.addEventListener("input", render);
  selectVolume();
})();
