// The unstable sort of GCC's libstdc++ (`std::sort`: introsort with median-of-three pivots, a heap sort past the depth
// limit, insertion sort below 16 elements), step for step. PyTorch's CPU `sort(descending=True)` runs it, so the order
// it leaves tied values in decides which replica EPLB puts where; reproducing it is how plans match the reference.

type Less = (a: number, b: number) => boolean;

const THRESHOLD = 16;

function swap(a: number[], i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

function moveMedianToFirst(a: number[], result: number, x: number, y: number, z: number, less: Less): void {
  if (less(a[x]!, a[y]!)) {
    if (less(a[y]!, a[z]!)) swap(a, result, y);
    else if (less(a[x]!, a[z]!)) swap(a, result, z);
    else swap(a, result, x);
  } else if (less(a[x]!, a[z]!)) swap(a, result, x);
  else if (less(a[y]!, a[z]!)) swap(a, result, z);
  else swap(a, result, y);
}

function unguardedPartition(a: number[], first: number, last: number, pivot: number, less: Less): number {
  for (;;) {
    while (less(a[first]!, a[pivot]!)) first++;
    last--;
    while (less(a[pivot]!, a[last]!)) last--;
    if (!(first < last)) return first;
    swap(a, first, last);
    first++;
  }
}

/** libstdc++ __adjust_heap on a[first .. first+len) with the hole at `hole`. */
function adjustHeap(a: number[], first: number, hole: number, len: number, value: number, less: Less): void {
  const top = hole;
  let child = hole;
  while (child < Math.floor((len - 1) / 2)) {
    child = 2 * (child + 1);
    if (less(a[first + child]!, a[first + child - 1]!)) child--;
    a[first + hole] = a[first + child]!;
    hole = child;
  }
  if ((len & 1) === 0 && child === Math.floor((len - 2) / 2)) {
    child = 2 * (child + 1);
    a[first + hole] = a[first + child - 1]!;
    hole = child - 1;
  }
  // __push_heap
  let parent = Math.trunc((hole - 1) / 2);
  while (hole > top && less(a[first + parent]!, value)) {
    a[first + hole] = a[first + parent]!;
    hole = parent;
    parent = Math.trunc((hole - 1) / 2);
  }
  a[first + hole] = value;
}

function heapSort(a: number[], first: number, last: number, less: Less): void {
  const len = last - first;
  if (len >= 2) for (let parent = Math.floor((len - 2) / 2); ; parent--) {
    adjustHeap(a, first, parent, len, a[first + parent]!, less);
    if (parent === 0) break;
  }
  // __heap_select with middle == last selects nothing more; __sort_heap:
  for (let end = last; end - first > 1;) {
    end--;
    const value = a[end]!;
    a[end] = a[first]!;
    adjustHeap(a, first, 0, end - first, value, less);
  }
}

function introsortLoop(a: number[], first: number, last: number, depth: number, less: Less): void {
  while (last - first > THRESHOLD) {
    if (depth === 0) {
      heapSort(a, first, last, less);
      return;
    }
    depth--;
    const mid = first + Math.floor((last - first) / 2);
    moveMedianToFirst(a, first, first + 1, mid, last - 1, less);
    const cut = unguardedPartition(a, first + 1, last, first, less);
    introsortLoop(a, cut, last, depth, less);
    last = cut;
  }
}

function unguardedLinearInsert(a: number[], last: number, less: Less): void {
  const val = a[last]!;
  let next = last - 1;
  while (less(val, a[next]!)) {
    a[last] = a[next]!;
    last = next;
    next--;
  }
  a[last] = val;
}

function insertionSort(a: number[], first: number, last: number, less: Less): void {
  if (first === last) return;
  for (let i = first + 1; i < last; i++) {
    if (less(a[i]!, a[first]!)) {
      const val = a[i]!;
      for (let j = i; j > first; j--) a[j] = a[j - 1]!;
      a[first] = val;
    } else unguardedLinearInsert(a, i, less);
  }
}

/** Sorts `a` in place exactly as libstdc++'s std::sort(a.begin(), a.end(), less) does. */
export function introsort(a: number[], less: Less): number[] {
  const n = a.length;
  if (n < 2) return a;
  introsortLoop(a, 0, n, 2 * Math.floor(Math.log2(n)), less);
  if (n > THRESHOLD) {
    insertionSort(a, 0, THRESHOLD, less);
    for (let i = THRESHOLD; i < n; i++) unguardedLinearInsert(a, i, less);
  } else insertionSort(a, 0, n, less);
  return a;
}

/** Indices of `w` in the order PyTorch's CPU `w.sort(descending=True).indices` gives (NaN-free input). */
export function torchSortDescending(w: ArrayLike<number>): number[] {
  return introsort(Array.from({ length: w.length }, (_, i) => i), (x, y) => w[x]! > w[y]!);
}
