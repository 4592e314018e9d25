// A small line chart on a canvas: a title, the latest value, and one line per series.
// The last POINTS samples are kept; the y axis runs from 0 to the largest value shown.

const POINTS = 120;
const COLORS = ["#2f7ae5", "#e5762f", "#2fa86b", "#b03fcf", "#d13c4b", "#7a8a99"];

export class LineChart {
  constructor(parent, title, format) {
    this.title = title;
    this.format = format;
    this.series = new Map(); // name -> values, oldest first
    this.figure = document.createElement("figure");
    this.figure.className = "chart";
    this.caption = document.createElement("figcaption");
    this.canvas = document.createElement("canvas");
    this.canvas.width = 360;
    this.canvas.height = 140;
    this.figure.append(this.caption, this.canvas);
    parent.append(this.figure);
  }

  /** Add one sample per series; a series missing from `values` is dropped. */
  push(values) {
    for (const name of [...this.series.keys()]) if (!(name in values)) this.series.delete(name);
    for (const [name, value] of Object.entries(values)) {
      const line = this.series.get(name) ?? [];
      line.push(Number.isFinite(value) ? value : 0);
      if (line.length > POINTS) line.shift();
      this.series.set(name, line);
    }
    this.draw();
  }

  points() {
    return Math.max(0, ...[...this.series.values()].map((line) => line.length));
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    const lines = [...this.series.entries()];
    const top = Math.max(1e-9, ...lines.flatMap(([, line]) => line));
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "#d0d7de";
    ctx.strokeRect(0.5, 0.5, width - 1, height - 1);
    ctx.fillStyle = "#57606a";
    ctx.font = "11px sans-serif";
    ctx.fillText(this.format(top), 4, 12);
    lines.forEach(([, line], i) => {
      ctx.strokeStyle = COLORS[i % COLORS.length];
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      line.forEach((value, x) => {
        const px = width - (line.length - 1 - x) * (width / (POINTS - 1));
        const py = height - 4 - (value / top) * (height - 20);
        if (x === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      });
      ctx.stroke();
    });
    const legend = lines.map(([name, line]) => `${name}: ${this.format(line.at(-1))}`);
    this.caption.textContent = `${this.title} — ${legend.join(" · ") || "no data"}`;
  }
}
