import { isSameOrInside } from "./path-guard.js";

/**
 * Which paths in storage are in use: models leased to running jobs, copies in
 * progress (destination and staging dir), and paths being removed. Checks and
 * marks are synchronous so that no await can slip between "is it free?" and
 * "take it".
 */
export class UseRegistry {
  private readonly uses = new Map<string, number>();
  private readonly removing = new Set<string>();

  /** Mark `dir` used until the returned function is called (idempotent). */
  hold(dir: string): () => void {
    this.uses.set(dir, (this.uses.get(dir) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.uses.get(dir) ?? 1) - 1;
      if (n <= 0) this.uses.delete(dir);
      else this.uses.set(dir, n);
    };
  }

  /** In use, or overlapping (inside / containing) something in use. */
  isBusy(dir: string): boolean {
    for (const used of this.uses.keys()) {
      if (isSameOrInside(dir, used) || isSameOrInside(used, dir)) return true;
    }
    return false;
  }

  isBeingRemoved(dir: string): boolean {
    for (const r of this.removing) {
      if (isSameOrInside(r, dir) || isSameOrInside(dir, r)) return true;
    }
    return false;
  }

  /** Claim `dir` for removal; false when it is busy or already being removed. */
  claimRemoval(dir: string): boolean {
    if (this.isBusy(dir) || this.isBeingRemoved(dir)) return false;
    this.removing.add(dir);
    return true;
  }

  endRemoval(dir: string): void {
    this.removing.delete(dir);
  }

  /** Paths held right now. */
  held(): string[] {
    return [...this.uses.keys()];
  }
}
