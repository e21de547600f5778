"""Augmentation for 48x48 grayscale faces, applied to training batches in the input pipeline."""

import keras
import numpy as np
import tensorflow as tf

from classifier.preprocess import FACE_SIZE

# Ranges chosen for tightly cropped faces: a face keeps its eyes and mouth in frame.
SHIFT_FRACTION = 0.1  # up to 4.8 px each way
ROTATION_DEGREES = 10
ZOOM_FRACTION = 0.1
CONTRAST_FACTOR = 0.2
BRIGHTNESS_FACTOR = 0.2  # of the 0-255 range


def build_augmenter(seed, erasing_probability=0.0):
    """Return a function that augments a batch of (B, 48, 48, 1) float32 faces in 0-255."""
    layers = keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(ROTATION_DEGREES / 360, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomZoom(ZOOM_FRACTION, fill_mode="reflect", seed=seed + 2),
        keras.layers.RandomTranslation(SHIFT_FRACTION, SHIFT_FRACTION, fill_mode="reflect", seed=seed + 3),
        keras.layers.RandomContrast(CONTRAST_FACTOR, value_range=(0, 255), seed=seed + 4),
        keras.layers.RandomBrightness(BRIGHTNESS_FACTOR, value_range=(0, 255), seed=seed + 5),
    ], name="augment")
    generator = tf.random.Generator.from_seed(seed + 6)

    def augment(images):
        images = tf.clip_by_value(layers(images, training=True), 0.0, 255.0)
        if erasing_probability > 0:
            images = random_erasing(images, erasing_probability, generator)
        return images

    return augment


def random_erasing(images, probability, generator, max_fraction=0.25):
    """Fill one random rectangle (up to `max_fraction` of the face) per image with gray."""
    batch = tf.shape(images)[0]
    size = tf.cast(generator.uniform([batch, 2], 0.1, np.sqrt(max_fraction)) * FACE_SIZE, tf.int32)
    corner = tf.cast(generator.uniform([batch, 2], 0.0, 1.0) * tf.cast(FACE_SIZE - size, tf.float32), tf.int32)
    grid = tf.range(FACE_SIZE)
    rows = (grid[None, :] >= corner[:, :1]) & (grid[None, :] < corner[:, :1] + size[:, :1])
    cols = (grid[None, :] >= corner[:, 1:]) & (grid[None, :] < corner[:, 1:] + size[:, 1:])
    chosen = generator.uniform([batch, 1, 1]) < probability
    mask = rows[:, :, None] & cols[:, None, :] & chosen
    return tf.where(mask[..., None], tf.fill(tf.shape(images), 128.0), images)


def mix_batch(images, targets, generator, mixup_alpha=0.0, cutmix_probability=0.0):
    """Mix each face of a batch with the next one (the batch is shuffled), and their targets alike.

    CutMix, with chance `cutmix_probability` per face, pastes a rectangle of the other face and
    takes the pasted share of the other target. Unlike the CutMix paper's box, its height and width
    are drawn apart (each the face's side times the square root of a uniform draw) and clipped at
    the edges, so it covers 29% of the face on average. Mixup, with `mixup_alpha` above 0, blends
    the faces that CutMix left alone in a ratio drawn from Beta(alpha, alpha), and their targets in
    the same ratio.
    """
    batch = tf.shape(images)[0]
    partner_images = tf.roll(images, shift=1, axis=0)
    partner_targets = tf.roll(targets, shift=1, axis=0)
    partner_share = tf.zeros([batch])
    mixed = images

    cut = generator.uniform([batch]) < cutmix_probability
    if cutmix_probability > 0:
        side = tf.sqrt(generator.uniform([batch, 2])) * FACE_SIZE
        center = generator.uniform([batch, 2]) * FACE_SIZE
        start = tf.cast(tf.clip_by_value(tf.round(center - side / 2), 0, FACE_SIZE), tf.int32)
        end = tf.cast(tf.clip_by_value(tf.round(center + side / 2), 0, FACE_SIZE), tf.int32)
        grid = tf.range(FACE_SIZE)
        rows = (grid[None, :] >= start[:, :1]) & (grid[None, :] < end[:, :1])
        cols = (grid[None, :] >= start[:, 1:]) & (grid[None, :] < end[:, 1:])
        mask = rows[:, :, None] & cols[:, None, :] & cut[:, None, None]
        mixed = tf.where(mask[..., None], partner_images, mixed)
        # The share actually pasted, after clipping at the face's edges.
        partner_share = tf.reduce_mean(tf.cast(mask, tf.float32), axis=[1, 2])

    if mixup_alpha > 0:
        seeds = generator.make_seeds(2)
        first = tf.random.stateless_gamma([batch], seeds[:, 0], alpha=mixup_alpha)
        second = tf.random.stateless_gamma([batch], seeds[:, 1], alpha=mixup_alpha)
        blend = tf.where(cut, 0.0, second / (first + second))
        mixed = (1 - blend[:, None, None, None]) * mixed + blend[:, None, None, None] * partner_images
        partner_share = tf.where(cut, partner_share, blend)

    share = partner_share[:, None]
    return mixed, (1 - share) * targets + share * partner_targets
