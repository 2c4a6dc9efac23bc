/**
 * The benchmark's table. Every measure adds its rows here, in the order they are measured; a
 * module of its own (say, HTTP measures) imports `addRatioRow` or `addValueRow` and nothing else.
 */
import { cpus } from "node:os";

export interface Row {
  measure: string;
  ours: string;
  baseline: string;
  /** ours / baseline; NaN for a row with no baseline. */
  ratio: number;
  goal: string;
  met: boolean;
}

const rows: Row[] = [];
const notes: string[] = [];

export function fmt(value: number, unit: string): string {
  return `${value >= 100 ? Math.round(value) : value.toPrecision(3)} ${unit}`;
}

/**
 * A measure against a baseline. `sense` says which way is good: "≤" for times (ours no more than
 * `goal` times the baseline), "≥" for rates. Without a goal the row is reported only.
 */
export function addRatioRow(measure: string, ours: number, baseline: number, unit: string, goal: number | undefined, sense: "≤" | "≥"): Row {
  const ratio = ours / baseline;
  const met = goal === undefined || (sense === "≤" ? ratio <= goal : ratio >= goal);
  const row = { measure, ours: fmt(ours, unit), baseline: fmt(baseline, unit), ratio, goal: goal === undefined ? "(reported)" : `${sense} ${Number(goal.toFixed(2))}×`, met };
  rows.push(row);
  return row;
}

/** A measure with no ratio: a size, or a difference against a limit. */
export function addValueRow(measure: string, ours: string, baseline: string, goal: string, met: boolean): Row {
  const row = { measure, ours, baseline, ratio: NaN, goal, met };
  rows.push(row);
  return row;
}

/** A line printed under the table (how long seeding took, where the bytes go, …). */
export function addNote(text: string): void {
  notes.push(text);
}

export function missedGoals(): Row[] {
  return rows.filter((row) => !row.met);
}

export function printReport(title: string): void {
  const lines = [
    `${title} — ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}`,
    "",
    "| Measure | Ours | Baseline | Ratio | Goal | Met |",
    "|---|---|---|---|---|---|",
    ...rows.map(
      (row) => `| ${row.measure} | ${row.ours} | ${row.baseline} | ${Number.isNaN(row.ratio) ? "—" : `${row.ratio.toFixed(2)}×`} | ${row.goal} | ${row.met ? "yes" : "**NO**"} |`,
    ),
  ];
  if (notes.length > 0) lines.push("", ...notes);
  console.log(lines.join("\n"));
}
