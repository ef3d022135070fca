"""A small Siamese encoder, trained with the triplet loss on P x K batches.

One encoder f maps an image to a unit-length embedding; "Siamese" means the very same
weights embed the anchor, the positive and the negative. Training draws batches of P
classes x K examples and mines triplets inside each batch (`nbutils.siamese.mining`), or,
for the random baseline, takes (A, P, N) triplets sampled offline.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nbutils.siamese.mining import MINING_STRATEGIES, random_triplet_loss, sample_random_triplets

STRATEGIES = ("random", *MINING_STRATEGIES)


def build_encoder(input_shape: tuple[int, int, int] = (28, 28, 1), embedding_dim: int = 64,
                  width: int = 32, seed: int = 0) -> keras.Model:
    """A compact ConvNet encoder: image (H, W, C) in [0, 1] -> (embedding_dim,) unit vector.

    Three conv blocks (width, 2 width, 4 width filters; 3x3 convs, batch norm, ReLU,
    2x2 max pooling), global average pooling, a dense projection, L2 normalisation.
    """
    init = keras.initializers.HeNormal(seed=seed)
    x = inputs = keras.Input(input_shape, name="image")
    for i, filters in enumerate((width, 2 * width, 4 * width), start=1):
        for j in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    kernel_initializer=init, name=f"block{i}_conv{j}")(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{j}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = keras.layers.Dense(embedding_dim, kernel_initializer=keras.initializers.GlorotUniform(
        seed=seed), name="projection")(x)
    outputs = keras.layers.UnitNormalization(name="l2_normalize")(x)
    return keras.Model(inputs, outputs, name="siamese_encoder")


def _class_index(labels: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(labels == c) for c in classes]


def pk_batches(images: np.ndarray, labels: np.ndarray, classes: np.ndarray, P: int = 16,
               K: int = 4, seed: int = 0) -> tf.data.Dataset:
    """An endless tf.data stream of P x K batches: P classes drawn without replacement from
    ``classes``, K examples of each (without replacement when the class has K or more).

    Yields (images (P*K, H, W, C) float32, labels (P*K,) int32).
    """
    classes = np.asarray(classes)
    if P > len(classes):
        raise ValueError(f"P={P} classes per batch, but only {len(classes)} classes to draw")
    members = _class_index(labels, classes)
    rng = np.random.default_rng(seed)

    def batches():
        while True:
            picked = rng.choice(len(classes), P, replace=False)
            idx = np.concatenate([rng.choice(members[c], K, replace=len(members[c]) < K)
                                  for c in picked])
            yield images[idx].astype(np.float32), labels[idx].astype(np.int32)

    spec = (tf.TensorSpec((P * K, *images.shape[1:]), tf.float32),
            tf.TensorSpec((P * K,), tf.int32))
    return tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(2)


def random_triplet_batches(images: np.ndarray, labels: np.ndarray, classes: np.ndarray,
                           batch_size: int = 64, seed: int = 0) -> tf.data.Dataset:
    """An endless stream of offline random triplets from ``classes``: each batch is
    (anchors, positives, negatives), each (batch_size, H, W, C), and a dummy label array."""
    keep = np.isin(labels, classes)
    images, labels = images[keep], labels[keep]
    rng = np.random.default_rng(seed)

    def batches():
        while True:
            a, p, n = sample_random_triplets(labels, batch_size, rng)
            yield (images[a], images[p], images[n]), np.zeros(batch_size, np.int32)

    x_spec = tf.TensorSpec((batch_size, *images.shape[1:]), tf.float32)
    spec = ((x_spec, x_spec, x_spec), tf.TensorSpec((batch_size,), tf.int32))
    return tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(2)


class TripletTrainer(keras.Model):
    """Wraps an encoder; ``fit`` minimises a triplet loss and reports the active fraction,
    the share of triplets whose loss is still positive (the ones that still teach)."""

    def __init__(self, encoder: keras.Model, strategy: str = "batch_hard", alpha: float = 0.2,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        self.encoder, self.strategy, self.alpha = encoder, strategy, alpha
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.active_tracker = keras.metrics.Mean(name="active_fraction")

    @property
    def metrics(self):
        return [self.loss_tracker, self.active_tracker]

    def call(self, x, training=False):
        return self.encoder(x, training=training)

    def _loss(self, x, labels):
        if self.strategy == "random":
            anchors, positives, negatives = x
            m = tf.shape(anchors)[0]
            e = self.encoder(tf.concat([anchors, positives, negatives], 0), training=True)
            return random_triplet_loss(e[:m], e[m:2 * m], e[2 * m:], alpha=self.alpha)
        return MINING_STRATEGIES[self.strategy](labels, self.encoder(x, training=True),
                                                alpha=self.alpha)

    def train_step(self, data):
        x, labels = data
        with tf.GradientTape() as tape:
            loss, active = self._loss(x, labels)
        grads = tape.gradient(loss, self.encoder.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.encoder.trainable_variables,
                                           strict=True))
        self.loss_tracker.update_state(loss)
        self.active_tracker.update_state(active)
        return {m.name: m.result() for m in self.metrics}


def train_encoder(images: np.ndarray, labels: np.ndarray, classes: np.ndarray,
                  strategy: str = "batch_hard", steps: int = 3000, P: int = 16, K: int = 4,
                  alpha: float = 0.2, learning_rate: float = 1e-3, embedding_dim: int = 64,
                  seed: int = 0, log_every: int = 100, verbose: int = 1
                  ) -> tuple[keras.Model, dict[str, list[float]]]:
    """(encoder, history): a fresh encoder trained ``steps`` batches on the examples of
    ``classes`` ((N, H, W, C) images in [0, 1]; other classes stay unseen).

    ``strategy``: "random" (P*K//3 offline triplets a batch) or a `MINING_STRATEGIES` key
    on P x K batches. history["loss"] and ["active_fraction"] are means over each block of
    ``log_every`` steps; history["step"] holds the block ends.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
    keras.utils.set_random_seed(seed)
    encoder = build_encoder(images.shape[1:], embedding_dim, seed=seed)
    if strategy == "random":
        # as many images per step as a P x K batch: P*K//3 (anchor, positive, negative) triplets
        data = random_triplet_batches(images, labels, classes, max(1, P * K // 3), seed)
    else:
        data = pk_batches(images, labels, classes, P, K, seed)
    trainer = TripletTrainer(encoder, strategy, alpha)
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))
    log_every = max(1, min(log_every, steps))
    fit = trainer.fit(data, epochs=max(1, steps // log_every), steps_per_epoch=log_every,
                      verbose=verbose, shuffle=False)
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    history["step"] = [log_every * (i + 1) for i in range(len(history["loss"]))]
    return encoder, history


def embed(encoder: keras.Model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """(N, H, W, C) images -> (N, d) float32 embeddings, in batches."""
    return np.concatenate([np.asarray(encoder(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])
