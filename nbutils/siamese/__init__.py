"""Training a Siamese encoder with the triplet loss, offline: a generated one-shot dataset
of character glyphs, triplet mining, N-way one-shot evaluation, and verification learned
as binary classification."""

from nbutils.siamese.evaluate import one_shot_accuracy, one_shot_table
from nbutils.siamese.glyphs import GlyphDataset, make_glyph_dataset, sample_grid
from nbutils.siamese.mining import (
    MINING_STRATEGIES,
    TripletMiningLoss,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    random_triplet_loss,
    sample_random_triplets,
    semi_hard_triplet_loss,
)
from nbutils.siamese.model import (
    STRATEGIES,
    TripletTrainer,
    build_encoder,
    embed,
    pk_batches,
    train_encoder,
)
from nbutils.siamese.verification import (
    accuracy_at,
    auc,
    build_logistic_head,
    distance_roc,
    equal_error_rate,
    make_pairs,
    pair_features,
    pick_threshold,
    roc_curve,
    train_logistic_head,
)

__all__ = [
    "MINING_STRATEGIES",
    "STRATEGIES",
    "GlyphDataset",
    "TripletMiningLoss",
    "TripletTrainer",
    "accuracy_at",
    "auc",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "build_encoder",
    "build_logistic_head",
    "distance_roc",
    "embed",
    "equal_error_rate",
    "make_glyph_dataset",
    "make_pairs",
    "one_shot_accuracy",
    "one_shot_table",
    "pair_features",
    "pick_threshold",
    "pk_batches",
    "random_triplet_loss",
    "roc_curve",
    "sample_grid",
    "sample_random_triplets",
    "semi_hard_triplet_loss",
    "train_encoder",
    "train_logistic_head",
]
