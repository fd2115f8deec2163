"""Metrics of attacks, one module per job (import the one you need):

- `medinv.metrics.image`: reconstruction quality (MSE, PSNR, SSIM) per image and as row fields;
- `medinv.metrics.features`: distance correlation and MMD of two samples of features;
- `medinv.metrics.roc`: membership-inference ROC metrics (AUC, TPR at FPR, balanced accuracy)
  and their bootstrap over records;
- `medinv.metrics.intervals`: summaries and 95% intervals of means (t, percentile bootstrap,
  draws x targets), the one home of every interval a row carries.
"""
