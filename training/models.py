"""Emotion classifiers defined in code: compact CNNs for 48x48 grayscale faces.

Every model takes raw pixel values (float32, 0-255, shape (48, 48, 1)) and returns logits
over the seven FER2013 classes. Scaling to 0-1 happens inside the model, so the classifier
feeds it exactly what `classifier.preprocess.crop_face` returns.
"""

import keras
from keras import layers

from classifier.labels import EMOTIONS
from classifier.preprocess import FACE_SIZE


def _conv_block(x, filters, dropout, name):
    for index in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{index}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{index}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{index}")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return layers.Dropout(dropout, name=f"{name}_dropout")(x)


def vgg(width=32, dense_units=256, dropout=0.1, head_dropout=0.4):
    """Build a VGG-style net: four blocks of two 3x3 convolutions, widths width..8*width."""
    inputs = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    for block, multiplier in enumerate((1, 2, 4, 8), start=1):
        x = _conv_block(x, width * multiplier, dropout, name=f"block{block}")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, use_bias=False, name="dense")(x)
    x = layers.BatchNormalization(name="dense_bn")(x)
    x = layers.Activation("relu", name="dense_relu")(x)
    x = layers.Dropout(head_dropout, name="head_dropout")(x)
    logits = layers.Dense(len(EMOTIONS), name="logits")(x)
    return keras.Model(inputs, logits, name=f"vgg{width}")


def tiny():
    """Build a few-thousand-parameter net for tests and smoke runs; it learns next to nothing."""
    inputs = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    logits = layers.Dense(len(EMOTIONS), name="logits")(x)
    return keras.Model(inputs, logits, name="tiny")


ARCHITECTURES = {
    "tiny": tiny,
    "vgg32": lambda: vgg(width=32),
    "vgg48": lambda: vgg(width=48),
    "vgg64": lambda: vgg(width=64, dense_units=512),
}
