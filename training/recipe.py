"""The settings of a training run, importable without TensorFlow."""

import dataclasses


def _setting(default, help):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Recipe:
    """Every setting of a training run; the defaults are the shipped model's recipe."""

    architecture: str = _setting("vgg32", "model from training.models.ARCHITECTURES")
    epochs: int = _setting(40, "epochs over the Training split; the cosine schedule ends at the last")
    batch_size: int = _setting(128, "faces per step")
    peak_learning_rate: float = _setting(0.05, "SGD (Nesterov momentum) learning rate after warm-up")
    warmup_epochs: int = _setting(2, "epochs of linear warm-up from a tenth of the peak learning rate")
    momentum: float = _setting(0.9, "SGD momentum")
    weight_decay: float = _setting(5e-4, "decoupled weight decay per step, scaled by the learning rate")
    label_smoothing: float = _setting(0.0, "share of the target spread evenly over the classes")
    fer_plus_weight: float = _setting(0.3, "share of the target taken from FER+ votes, with --fer-plus")
    erasing_probability: float = _setting(0.0, "chance of erasing a random rectangle of each face")
    keep_weights_from: int = _setting(0, "save each epoch's weights from this epoch on, as weights/epoch-NNN.npz "
                                          "in the run folder, for `average` (0: never)")
    patience_epochs: int = _setting(10, "stop after this many epochs without a better PublicTest accuracy")
    seed: int = _setting(1337, "random seed for weights, shuffling and augmentation")
