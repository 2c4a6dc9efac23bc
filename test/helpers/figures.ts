import { appendFileSync } from "node:fs";

/**
 * What an adversarial suite did — operations run, faults injected, inputs tried, losses — for
 * the figures in docs/security.md. Written as JSON lines to the file named by
 * ADVERSARIAL_FIGURES when it is set (`ADVERSARIAL_FIGURES=/tmp/figures.jsonl npm run
 * test:adversarial`); otherwise nothing is written.
 */
export function recordFigures(suite: string, figures: Record<string, number | string>): void {
  const file = process.env.ADVERSARIAL_FIGURES;
  if (file === undefined || file === "") return;
  appendFileSync(file, `${JSON.stringify({ suite, ...figures })}\n`);
}
