"""Training a Siamese encoder with the triplet loss, offline: triplet mining, N-way one-shot
evaluation, and verification learned as binary classification (the dataset of rendered
character glyphs is `nbutils.extras.glyphs`). Each name below imports its module on first
use."""

from nbutils._internal.lazy import lazy_names

__getattr__, __dir__, __all__ = lazy_names(__name__, {
    "evaluate": ("one_shot_accuracy", "one_shot_table"),
    "mining": ("MINING_STRATEGIES", "TripletMiningLoss", "batch_all_triplet_loss",
               "batch_hard_triplet_loss", "random_triplet_loss", "sample_random_triplets",
               "semi_hard_triplet_loss"),
    "model": ("STRATEGIES", "TripletTrainer", "build_encoder", "embed", "pk_batches",
              "train_encoder"),
    "verification": ("accuracy_at", "auc", "build_logistic_head", "distance_roc",
                     "equal_error_rate", "make_pairs", "pair_features", "pick_threshold",
                     "plot_roc", "roc_curve", "train_logistic_head"),
})
