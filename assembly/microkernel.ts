// Register-blocked micro-kernels (generated shape code): 3x12 for relaxed FMA, 2x16 for plain mul+add.
import { fma } from './common';

/** 3x12 micro-kernel: C (3, 12) (row stride ldcb bytes) = [C if loadC] + [bias] + Ap (3 per k) · Bp (12 per k). */
export function kernel3x12(ap: usize, bp: usize, kc: i32, c: usize, ldcb: usize, loadC: bool, bias: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c22 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const a0 = v128.load32_splat(ap, 0); const a1 = v128.load32_splat(ap, 4); const a2 = v128.load32_splat(ap, 8);
    const b0 = v128.load(bp, 0); c00 = fma(a0, b0, c00); c10 = fma(a1, b0, c10); c20 = fma(a2, b0, c20);
    const b1 = v128.load(bp, 16); c01 = fma(a0, b1, c01); c11 = fma(a1, b1, c11); c21 = fma(a2, b1, c21);
    const b2 = v128.load(bp, 32); c02 = fma(a0, b2, c02); c12 = fma(a1, b2, c12); c22 = fma(a2, b2, c22);
    ap += 12; bp += 48;
  }
  if (bias) {
    const b0 = v128.load(bias, 0); const b1 = v128.load(bias, 16); const b2 = v128.load(bias, 32);
    c00 = f32x4.add(c00, b0); c01 = f32x4.add(c01, b1); c02 = f32x4.add(c02, b2);
    c10 = f32x4.add(c10, b0); c11 = f32x4.add(c11, b1); c12 = f32x4.add(c12, b2);
    c20 = f32x4.add(c20, b0); c21 = f32x4.add(c21, b1); c22 = f32x4.add(c22, b2);
  }
  if (loadC) {
    c00 = f32x4.add(c00, v128.load(c + 0 * ldcb, 0)); c01 = f32x4.add(c01, v128.load(c + 0 * ldcb, 16)); c02 = f32x4.add(c02, v128.load(c + 0 * ldcb, 32));
    c10 = f32x4.add(c10, v128.load(c + 1 * ldcb, 0)); c11 = f32x4.add(c11, v128.load(c + 1 * ldcb, 16)); c12 = f32x4.add(c12, v128.load(c + 1 * ldcb, 32));
    c20 = f32x4.add(c20, v128.load(c + 2 * ldcb, 0)); c21 = f32x4.add(c21, v128.load(c + 2 * ldcb, 16)); c22 = f32x4.add(c22, v128.load(c + 2 * ldcb, 32));
  }
  v128.store(c + 0 * ldcb, c00, 0); v128.store(c + 0 * ldcb, c01, 16); v128.store(c + 0 * ldcb, c02, 32);
  v128.store(c + 1 * ldcb, c10, 0); v128.store(c + 1 * ldcb, c11, 16); v128.store(c + 1 * ldcb, c12, 32);
  v128.store(c + 2 * ldcb, c20, 0); v128.store(c + 2 * ldcb, c21, 16); v128.store(c + 2 * ldcb, c22, 32);
}

/** 2x16 micro-kernel: C (2, 16) (row stride ldcb bytes) = [C if loadC] + [bias] + Ap (2 per k) · Bp (16 per k). */
export function kernel2x16(ap: usize, bp: usize, kc: i32, c: usize, ldcb: usize, loadC: bool, bias: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const a0 = v128.load32_splat(ap, 0); const a1 = v128.load32_splat(ap, 4);
    const b0 = v128.load(bp, 0); c00 = fma(a0, b0, c00); c10 = fma(a1, b0, c10);
    const b1 = v128.load(bp, 16); c01 = fma(a0, b1, c01); c11 = fma(a1, b1, c11);
    const b2 = v128.load(bp, 32); c02 = fma(a0, b2, c02); c12 = fma(a1, b2, c12);
    const b3 = v128.load(bp, 48); c03 = fma(a0, b3, c03); c13 = fma(a1, b3, c13);
    ap += 8; bp += 64;
  }
  if (bias) {
    const b0 = v128.load(bias, 0); const b1 = v128.load(bias, 16); const b2 = v128.load(bias, 32); const b3 = v128.load(bias, 48);
    c00 = f32x4.add(c00, b0); c01 = f32x4.add(c01, b1); c02 = f32x4.add(c02, b2); c03 = f32x4.add(c03, b3);
    c10 = f32x4.add(c10, b0); c11 = f32x4.add(c11, b1); c12 = f32x4.add(c12, b2); c13 = f32x4.add(c13, b3);
  }
  if (loadC) {
    c00 = f32x4.add(c00, v128.load(c + 0 * ldcb, 0)); c01 = f32x4.add(c01, v128.load(c + 0 * ldcb, 16)); c02 = f32x4.add(c02, v128.load(c + 0 * ldcb, 32)); c03 = f32x4.add(c03, v128.load(c + 0 * ldcb, 48));
    c10 = f32x4.add(c10, v128.load(c + 1 * ldcb, 0)); c11 = f32x4.add(c11, v128.load(c + 1 * ldcb, 16)); c12 = f32x4.add(c12, v128.load(c + 1 * ldcb, 32)); c13 = f32x4.add(c13, v128.load(c + 1 * ldcb, 48));
  }
  v128.store(c + 0 * ldcb, c00, 0); v128.store(c + 0 * ldcb, c01, 16); v128.store(c + 0 * ldcb, c02, 32); v128.store(c + 0 * ldcb, c03, 48);
  v128.store(c + 1 * ldcb, c10, 0); v128.store(c + 1 * ldcb, c11, 16); v128.store(c + 1 * ldcb, c12, 32); v128.store(c + 1 * ldcb, c13, 48);
}
