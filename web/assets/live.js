// Small helpers pages share for live updates.

/** Calls `f` at most once per `wait` ms, trailing. */
export function debounce(f, wait = 250) {
  let timer = null;
  const run = () => {
    timer = null;
    f();
  };
  const d = () => {
    if (!timer) timer = setTimeout(run, wait);
  };
  d.cancel = () => clearTimeout(timer);
  return d;
}
