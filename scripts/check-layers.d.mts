// Types of scripts/check-layers.mjs, for the tests that import it.
export interface LayerViolation {
  kind: 'size' | 'cycle' | 'layer';
  /** relative to the current directory */
  file: string;
  line: number;
  message: string;
}
export declare const MAX_LINES: number;
export declare const CONTRACT: readonly string[];
export declare const LAYERS: Readonly<Record<string, readonly string[]>>;
export declare function layerOf(rel: string): string | null;
export declare function importsOf(text: string, fileName?: string): { spec: string; line: number }[];
export declare function checkLayers(srcDir: string, opts?: { maxLines?: number }): LayerViolation[];
