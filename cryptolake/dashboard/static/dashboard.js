// The cryptolake dashboard: candles per venue and symbol, each venue's close and the spread between venues, and
// the pipeline's health. Served, it polls the JSON API; written by `cryptolake chart`, it draws the data inlined.
"use strict";

const LWC = window.LightweightCharts;
const POLL_MS = 3000;
const UP = "#26a69a";
const DOWN = "#ef5350";
const VWAP = "#2962ff";
const VENUE_COLOURS = { binance: "#f0b90b", kraken: "#5741d9", coinbase: "#0052ff", bybit: "#222222", okx: "#8c8c8c" };
const OTHER_COLOURS = ["#e91e63", "#009688", "#795548", "#3f51b5"];

const panels = new Map(); // "candles exchange symbol" or "venues symbol" -> {element, chart, series}
let interval = "1m";

function venueColour(exchange, index) {
  return VENUE_COLOURS[exchange] || OTHER_COLOURS[index % OTHER_COLOURS.length];
}

function priceFormat(decimals) {
  return { type: "price", precision: decimals, minMove: 10 ** -decimals };
}

function panel(key, container, title) {
  // A titled box with a chart in it, made the first time its key is drawn.
  if (panels.has(key)) return panels.get(key);
  const element = document.createElement("div");
  element.className = "panel";
  element.innerHTML = "<h3></h3><div class=legend></div><div class=chart></div>";
  element.querySelector("h3").textContent = title;
  container.appendChild(element);
  const chart = LWC.createChart(element.querySelector(".chart"), {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#333" },
    grid: { vertLines: { color: "#f0f0f0" }, horzLines: { color: "#f0f0f0" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  const made = { element, chart, series: new Map() };
  panels.set(key, made);
  return made;
}

function drawCandles(one) {
  const made = panel(`candles ${one.exchange} ${one.symbol}`, document.getElementById("candles"),
    `${one.symbol} on ${one.exchange}, ${interval} bars (UTC)`);
  if (!made.series.size) {
    const candles = made.chart.addSeries(LWC.CandlestickSeries, {
      upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN,
    });
    candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.28 } });
    const volume = made.chart.addSeries(LWC.HistogramSeries, {
      priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false,
    });
    made.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.78, bottom: 0 } });
    const vwap = made.chart.addSeries(LWC.LineSeries, {
      color: VWAP, lineWidth: 1, lastValueVisible: false, priceLineVisible: false, title: "vwap",
    });
    made.series.set("candles", candles).set("volume", volume).set("vwap", vwap);
  }
  made.series.get("candles").applyOptions({ priceFormat: priceFormat(one.decimals) });
  made.series.get("candles").setData(one.bars);
  made.series.get("vwap").applyOptions({ priceFormat: priceFormat(one.decimals) });
  made.series.get("vwap").setData(one.bars.map((bar) => ({ time: bar.time, value: bar.vwap })));
  made.series.get("volume").setData(one.bars.map((bar) => ({
    time: bar.time, value: bar.volume, color: bar.close >= bar.open ? UP + "80" : DOWN + "80",
  })));
  const last = one.bars[one.bars.length - 1];
  made.element.querySelector(".legend").textContent =
    `last ${new Date(last.time * 1000).toISOString().slice(11, 16)}: O ${last.open} H ${last.high} ` +
    `L ${last.low} C ${last.close} V ${last.volume} vwap ${last.vwap.toFixed(one.decimals)} n ${last.trades}`;
  // What a test waits on: how many candles this chart holds, and the newest one's time.
  Object.assign(made.element.dataset, { symbol: one.symbol, exchange: one.exchange, candles: one.bars.length, last: last.time });
}

function legendEntry(text, colour) {
  const span = document.createElement("span");
  span.textContent = text;
  span.style.color = colour;
  return span;
}

function drawVenues(symbol, venues, spread) {
  const made = panel(`venues ${symbol}`, document.getElementById("venues"), `${symbol}: close per venue, and spread`);
  const legend = [];
  venues.forEach((one, index) => {
    const colour = venueColour(one.exchange, index);
    if (!made.series.has(one.exchange)) {
      made.series.set(one.exchange, made.chart.addSeries(LWC.LineSeries, { color: colour, lineWidth: 2, title: one.exchange }));
    }
    made.series.get(one.exchange).applyOptions({ priceFormat: priceFormat(one.decimals) });
    made.series.get(one.exchange).setData(one.bars.map((bar) => ({ time: bar.time, value: bar.close })));
    legend.push(legendEntry(`■ ${one.exchange}`, colour));
  });
  if (spread) {
    if (!made.series.has("spread")) {
      // A pane of its own under the closes: a spread is a few ticks, the closes are thousands.
      made.series.set("spread", made.chart.addSeries(LWC.HistogramSeries, { color: "#9e9e9e", title: "spread" }, 1));
    }
    made.series.get("spread").applyOptions({ priceFormat: priceFormat(venues[0].decimals) });
    made.series.get("spread").setData(spread.points.map((point) => ({ time: point.time, value: point.value })));
    const latest = spread.points[spread.points.length - 1].value.toFixed(venues[0].decimals);
    legend.push(legendEntry(`▮ spread, latest ${latest}`, "#9e9e9e"));
  }
  made.element.querySelector(".legend").replaceChildren(...legend);
}

function drawBars(data) {
  document.getElementById("empty").hidden = data.series.length > 0;
  const bySymbol = new Map();
  for (const one of data.series) {
    drawCandles(one);
    bySymbol.set(one.symbol, [...(bySymbol.get(one.symbol) || []), one]);
  }
  const spreads = new Map(data.spreads.map((spread) => [spread.symbol, spread]));
  for (const [symbol, venues] of bySymbol) drawVenues(symbol, venues, spreads.get(symbol));
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return seconds < 120 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function drawHealth(health) {
  const body = document.querySelector("#layers tbody");
  body.replaceChildren();
  for (const layer of health.layers || []) {
    const row = body.insertRow();
    cell(row, layer.name);
    cell(row, layer.state);
    cell(row, `${layer.rows.toLocaleString()} ${layer.name === "gold" ? "bars" : "rows"}`, "number");
    cell(row, `${layer.per_s.toLocaleString()}/s`, "number");
  }
  const facts = {
    "ingestor frames": health.frames === null ? "—" : health.frames.toLocaleString(),
    "silver last wrote": age(health.silver_wrote_s),
    "newest complete 1m bar closed": age(health.gold_bar_closed_s),
    "quarantined rows": health.quarantined === null ? "—" : health.quarantined.toLocaleString(),
  };
  document.getElementById("facts").innerHTML = Object.keys(facts).map((k) => `<dt>${k}</dt><dd></dd>`).join("");
  document.querySelectorAll("#facts dd").forEach((dd, i) => { dd.textContent = Object.values(facts)[i]; });
  const error = document.getElementById("error");
  error.hidden = !health.error;
  error.textContent = health.error || "";
}

async function loadBars() {
  const bars = await fetch(`api/bars?interval=${interval}`).then((r) => r.json());
  if (bars.interval === interval) drawBars(bars); // else another interval was chosen meanwhile
}

async function poll() {
  try {
    const [health] = await Promise.all([fetch("api/health").then((r) => r.json()), loadBars()]);
    drawHealth(health);
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = `cannot reach the dashboard server: ${error}`;
  }
  setTimeout(poll, POLL_MS);
}

function choose(button) {
  // Another interval: new charts, since their time scales differ.
  interval = button.dataset.interval;
  document.querySelectorAll("#intervals button").forEach((b) => b.classList.toggle("chosen", b === button));
  for (const made of panels.values()) { made.chart.remove(); made.element.remove(); }
  panels.clear();
}

const inlined = window.CRYPTOLAKE_DATA;
if (inlined) {
  document.body.classList.add("static");
  document.getElementById("title").textContent = inlined.title;
  interval = inlined.interval;
  drawBars(inlined);
} else {
  document.querySelectorAll("#intervals button").forEach((button) => button.addEventListener("click", () => {
    choose(button);
    loadBars();
  }));
  poll();
}
