// A small line chart on a canvas that explains itself: a title with the unit, a y axis from 0
// to the largest value shown, a time axis in seconds before now, and a legend of each series
// in its own colour with its latest value. No chart library: the pages ship plain modules.

const POINTS = 120; // samples kept per series, one per `stepSeconds`
// Distinct hues, far apart in the order they are handed out; a series keeps its colour while
// it lives, so a stream does not change colour when another appears or goes.
const COLORS = [
  "#2f7ae5", "#e5762f", "#2fa86b", "#b03fcf", "#d13c4b",
  "#1fa3b8", "#8c6d1f", "#e04f9a", "#5c6bc0", "#6b8e23",
];
const AXIS = { left: 56, right: 8, top: 8, bottom: 18 }; // room for the labels, in pixels
const TIME_TICKS = [120, 90, 60, 30, 0]; // seconds before now that the time axis labels

/** The y axis's top: the value rounded up to 1, 2 or 5 times a power of ten (1 for 0), so
 * its labels read cleanly. */
export function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((top) => top >= value * (1 - 1e-9));
}

export class LineChart {
  /**
   * @param parent element the figure is appended to
   * @param title what the chart shows; `unit` is added to it and to the y axis
   * @param format a value with its unit, for the axis and the legend
   * @param options {unit, labels: {series: legend text}, stepSeconds}
   */
  constructor(parent, title, format, { unit = "", labels = {}, stepSeconds = 1 } = {}) {
    this.title = title;
    this.format = format;
    this.unit = unit;
    this.labels = labels;
    this.stepSeconds = stepSeconds;
    this.series = new Map(); // name -> values, oldest first
    this.colors = new Map(); // name -> colour, kept while the series lives
    this.axisLabels = { y: [], time: [] };
    this.figure = document.createElement("figure");
    this.figure.className = "chart";
    this.figure.dataset.chart = title;
    this.caption = document.createElement("figcaption");
    this.caption.textContent = unit ? `${title} (${unit})` : title;
    this.canvas = document.createElement("canvas");
    this.canvas.width = 360;
    this.canvas.height = 150;
    this.canvas.setAttribute("role", "img");
    this.legend = document.createElement("ul");
    this.legend.className = "legend";
    this.figure.append(this.caption, this.canvas, this.legend);
    parent.append(this.figure);
  }

  /** Add one sample per series; a series missing from `values` is dropped. */
  push(values) {
    for (const name of [...this.series.keys()]) {
      if (!(name in values)) {
        this.series.delete(name);
        this.colors.delete(name);
      }
    }
    for (const [name, value] of Object.entries(values)) {
      const line = this.series.get(name) ?? [];
      line.push(Number.isFinite(value) ? value : 0);
      if (line.length > POINTS) line.shift();
      this.series.set(name, line);
      if (!this.colors.has(name)) this.colors.set(name, this.freeColor());
    }
    this.draw();
  }

  /** The first colour no live series has; past ten series they repeat, dashed. */
  freeColor() {
    const taken = new Set(this.colors.values());
    return COLORS.find((c) => !taken.has(c)) ?? COLORS[this.colors.size % COLORS.length];
  }

  points() {
    return Math.max(0, ...[...this.series.values()].map((line) => line.length));
  }

  /** What the legend shows, for tests: each series' name, label and colour. */
  legendEntries() {
    return [...this.series.keys()].map((name) => ({
      name,
      label: this.labels[name] ?? name,
      color: this.colors.get(name),
    }));
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    const plot = {
      x: AXIS.left,
      y: AXIS.top,
      w: width - AXIS.left - AXIS.right,
      h: height - AXIS.top - AXIS.bottom,
    };
    const lines = [...this.series.entries()];
    const top = niceCeiling(Math.max(0, ...lines.flatMap(([, line]) => line)));
    ctx.clearRect(0, 0, width, height);
    this.drawAxes(ctx, plot, top);
    lines.forEach(([name, line], i) => {
      ctx.strokeStyle = this.colors.get(name);
      ctx.setLineDash(i >= COLORS.length ? [4, 3] : []);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      line.forEach((value, x) => {
        const px = plot.x + plot.w - (line.length - 1 - x) * (plot.w / (POINTS - 1));
        const py = plot.y + plot.h - (value / top) * plot.h;
        if (x === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      });
      ctx.stroke();
    });
    ctx.setLineDash([]);
    this.drawLegend();
  }

  /** Grid, y labels (0, half, top, with the unit) and the time axis (seconds before now). */
  drawAxes(ctx, plot, top) {
    this.axisLabels = { y: [], time: [] }; // what was written, for tests
    ctx.font = "10px sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#d0d7de";
    ctx.fillStyle = "#57606a";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const share of [0, 0.5, 1]) {
      const y = Math.round(plot.y + plot.h - share * plot.h) + 0.5;
      ctx.beginPath();
      ctx.moveTo(plot.x, y);
      ctx.lineTo(plot.x + plot.w, y);
      ctx.stroke();
      const label = this.format(share * top);
      this.axisLabels.y.push(label);
      ctx.fillText(label, plot.x - 4, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const span = (POINTS - 1) * this.stepSeconds;
    for (const ago of TIME_TICKS) {
      if (ago > span) continue;
      const x = Math.round(plot.x + plot.w - (ago / span) * plot.w) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, plot.y + plot.h);
      ctx.lineTo(x, plot.y + plot.h + 3);
      ctx.stroke();
      const text = ago === 0 ? "now" : `−${ago} s`;
      ctx.textAlign = ago === 0 ? "right" : "center";
      this.axisLabels.time.push(text);
      ctx.fillText(text, x, plot.y + plot.h + 5);
    }
  }

  drawLegend() {
    const items = [...this.series.entries()].map(([name, line]) => {
      const li = document.createElement("li");
      li.dataset.series = name;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = this.colors.get(name);
      li.append(swatch, `${this.labels[name] ?? name}: ${this.format(line.at(-1))}`);
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.textContent = "no data yet";
      items.push(li);
    }
    this.legend.replaceChildren(...items);
  }
}
