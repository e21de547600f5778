"""The settings of a training run, importable without TensorFlow."""

import dataclasses


# Below this, Beta(alpha, alpha) draws made from float32 gamma draws underflow to even blends.
MIN_MIXUP_ALPHA = 0.05


def _setting(default, help):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Recipe:
    """Every setting of a training run; the defaults are the shipped model's recipe."""

    architecture: str = _setting("vgg32", "model from training.models.ARCHITECTURES")
    epochs: int = _setting(40, "epochs over the Training split; the cosine schedule ends at the last")
    batch_size: int = _setting(128, "faces per step")
    peak_learning_rate: float = _setting(0.05, "SGD (Nesterov momentum) learning rate after warm-up")
    warmup_epochs: int = _setting(2, "epochs of linear warm-up from a tenth of the peak learning rate "
                                  "(at most --epochs minus 1)")
    momentum: float = _setting(0.9, "SGD momentum")
    weight_decay: float = _setting(5e-4, "decoupled weight decay per step, scaled by the learning rate")
    label_smoothing: float = _setting(0.0, "share of the target spread evenly over the classes")
    fer_plus_weight: float = _setting(0.3, "share of the target taken from FER+ votes, with --fer-plus")
    erasing_probability: float = _setting(0.0, "chance of erasing a random rectangle of each face")
    mixup_alpha: float = _setting(0.0, "mix each face with another in a Beta(alpha, alpha) ratio, targets "
                                       "alike (mixup; 0: off)")
    cutmix_probability: float = _setting(0.0, "chance of pasting a rectangle of another face into each face, "
                                              "targets mixed by its area (CutMix)")
    teacher_weight: float = _setting(0.5, "share of the target taken from the teacher's probabilities, with --teacher")
    teacher_temperature: float = _setting(2.0, "softmax temperature for the teacher's logits, with --teacher, "
                                               "in place of its calibrated one (above 1 softens them)")
    keep_weights_from: int = _setting(0, "save each epoch's weights from this epoch on, as weights/epoch-NNN.npz "
                                          "in the run folder, for `average` (0: never)")
    patience_epochs: int = _setting(10, "stop after this many epochs without a better PublicTest accuracy")
    seed: int = _setting(1337, "random seed for weights, shuffling and augmentation")

    def problems(self):
        """Return a message for each setting outside its valid range (an empty list when all are valid)."""
        from training.models import ARCHITECTURES  # here, so that this module stays free of TensorFlow

        checks = [
            (self.architecture in ARCHITECTURES,
             f"--architecture {self.architecture}: expected one of {', '.join(sorted(ARCHITECTURES))}"),
            (self.epochs >= 1, f"--epochs {self.epochs}: expected 1 or more"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: expected 1 or more"),
            (self.peak_learning_rate > 0, f"--peak-learning-rate {self.peak_learning_rate}: expected more than 0"),
            (self.warmup_epochs >= 0, f"--warmup-epochs {self.warmup_epochs}: expected 0 or more"),
            (0 <= self.momentum < 1, f"--momentum {self.momentum}: expected at least 0 and below 1"),
            (self.weight_decay >= 0, f"--weight-decay {self.weight_decay}: expected 0 or more"),
            (0 <= self.label_smoothing < 1,
             f"--label-smoothing {self.label_smoothing}: expected at least 0 and below 1"),
            (0 <= self.fer_plus_weight <= 1, f"--fer-plus-weight {self.fer_plus_weight}: expected 0 to 1"),
            (self.mixup_alpha == 0 or MIN_MIXUP_ALPHA <= self.mixup_alpha <= 10,
             f"--mixup-alpha {self.mixup_alpha}: expected 0 (off) or {MIN_MIXUP_ALPHA} to 10"),
            (0 <= self.cutmix_probability <= 1,
             f"--cutmix-probability {self.cutmix_probability}: expected 0 to 1"),
            (0 <= self.teacher_weight <= 1, f"--teacher-weight {self.teacher_weight}: expected 0 to 1"),
            (0.1 <= self.teacher_temperature <= 100,
             f"--teacher-temperature {self.teacher_temperature}: expected 0.1 to 100"),
            (0 <= self.erasing_probability <= 1, f"--erasing-probability {self.erasing_probability}: expected 0 to 1"),
            (self.keep_weights_from >= 0, f"--keep-weights-from {self.keep_weights_from}: expected 0 or more"),
            (self.patience_epochs >= 1, f"--patience-epochs {self.patience_epochs}: expected 1 or more"),
            (self.seed >= 0, f"--seed {self.seed}: expected 0 or more"),
        ]
        return [message for valid, message in checks if not valid]
