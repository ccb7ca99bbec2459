// Evaluation: sliding-window and unigram perplexity; sequence classification (head, fine-tuning, metrics).
export { perplexity, unigramPerplexity, slidingWindows, type PerplexityOptions, type PerplexityResult } from './perplexity.js';
export {
  ClassifierHead, hiddenStates, padBatch, fineTuneClassifier, predictClassifier, evaluateClassifier, classificationMetrics,
  type ClassifyRow, type FineTuneOptions, type ClassifyMetrics,
} from './classify.js';
