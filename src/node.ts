// moekit/node: the file-reading parts that need Node (corpora, GLUE/WikiText readers, tokenizer files), plus everything in 'moekit'.
export * from './index.js';
export { BROWN_GENRES, loadBrown, splitBrown, brownGenreTask, brownDir, type BrownDoc, type BrownSplit, type GenreRow, type GenreTaskOptions } from './io/brown.js';
export { trainBpe, saveTokenizerJson, loadTokenizer, tokenizerJson, type BpeModel, type TrainBpeOptions, type LoadedTokenizer } from './io/tokenizer.js';
export { readGlueTsv, readSst2, readMrpc, type GlueRow, type GlueSpec } from './io/glue.js';
export { loadWikitext, WIKITEXT_FILES, type Wikitext, type WikitextSplit, type WikitextArticle } from './io/wikitext.js';
export { readLines } from './io/lines.js';
export { ExpertStore, writeOffloadFile, type OffloadOptions, type OffloadStats } from './serve/offload.js';
export { train, sampleBatch, type TrainOptions, type TrainResult, type StepMetrics, type RegroupLog } from './train/loop.js';
export { Checkpoint, loadHfModel, readHfConfig, type HfModel } from './models/hf/load.js';
export { exportHf, type ExportHfOptions } from './models/hf/export.js';
export { loadModelDir, saveModelDir, materialize, MOEKIT_MODEL_FORMAT, type LoadedModel, type MoekitModelInfo } from './models/dir.js';
export { TraceWriter, readTrace, TRACE_FORMAT, TRACE_VERSION, type TraceShape, type TraceRows } from './trace/format.js';
export { traceModel, traceShape, type TraceOptions } from './trace/record.js';
export { readNpyTrace, writeNpy, parseNpyHeader, type NpyDtype, type NpyData, type ReadNpyOptions, type WriteNpyOptions } from './trace/npy.js';
export { readMegatronJsonl, writeMegatronJsonl, type ReadMegatronOptions, type WriteMegatronOptions } from './trace/megatron.js';
export { readPlanFile, writePlanFile, parsePlan, type PlanFormat, type WritePlanOptions } from './plan/plan-file.js';
export { createServer, type ServerOptions, type MoekitServer } from './serve/http.js';
export { ServerMetrics } from './serve/metrics.js';
