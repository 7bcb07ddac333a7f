/** Rejects when `p` has not settled within `ms` (a page or probe read never hangs a request). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves true when `check` resolves within `timeoutMs`, false on rejection or timeout. */
export function answers(check: () => Promise<unknown>, timeoutMs: number): Promise<boolean> {
  return within(Promise.resolve().then(check), timeoutMs).then(
    () => true,
    () => false,
  );
}
