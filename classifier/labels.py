"""The seven FER2013 expression classes, in the dataset's label order."""

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
