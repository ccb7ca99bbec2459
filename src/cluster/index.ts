export * from './svd.js';
export * from './similarity.js';
export * from './kmeans.js';
export * from './regroup.js';
