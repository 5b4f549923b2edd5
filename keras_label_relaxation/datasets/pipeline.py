"""``tf.data`` input pipelines with the paper's CIFAR augmentation."""

import keras

#: Data sets the paper trains with ``augmentation`` (its CIFAR experiments).
AUGMENTED_DATASETS = ("cifar10", "cifar100")


def augmentation(seed=0):
    """Random horizontal flip and width/height shift of 0.1, as in the paper.

    Keras preprocessing layers (usable inside ``tf.data`` with any backend);
    shifted-in pixels repeat the nearest edge, as ``ImageDataGenerator`` did.
    They keep float32 images under a mixed-precision policy (the model casts).
    """
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed, dtype="float32"),
            keras.layers.RandomTranslation(
                0.1, 0.1, fill_mode="nearest", seed=seed + 1, dtype="float32"
            ),
        ],
        name="augmentation",
    )


def make_dataset(
    x,
    y,
    batch_size=64,
    training=False,
    augment=False,
    seed=0,
    num_classes=None,
    cache=True,
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(images, labels)``.

    Args:
        x: Images ``(N, H, W, C)``, preprocessed.
        y: Integer labels ``(N,)``.
        batch_size: Batch size (the paper: 64).
        training: Shuffle every epoch (seeded).
        augment: Apply ``augmentation(seed)`` to the training batches.
        seed: Seed of shuffling and augmentation: the same seed gives the same
            batches, epoch after epoch (augmentation runs on one batch at a time
            for that; ``prefetch`` overlaps it with training).
        num_classes: If given, labels become one-hot rows of this width (for
            the one-hot losses); otherwise they stay integers (sparse losses).
        cache: Cache the examples in memory after the first epoch.

    Returns:
        A ``tf.data.Dataset``.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment:
        # One batch at a time: the layers' seed generators advance once per call, so a
        # parallel map would hand out their random draws in a nondeterministic order.
        layers = augmentation(seed)
        dataset = dataset.map(lambda images, labels: (layers(images, training=True), labels))
    if num_classes is not None:
        dataset = dataset.map(lambda images, labels: (images, tf.one_hot(labels, num_classes)))
    return dataset.prefetch(tf.data.AUTOTUNE)
