"""The paper's ID / OOD protocols, by name (``evaluate.py --protocol``). No TensorFlow here:
``--help`` lists them."""

# The paper's ID / OOD pairs (Tables 4 and 5). The OOD sets of a protocol form one mixture.
PROTOCOLS = {
    "table4-mnist": ("mnist", ["fashion_mnist", "omniglot"]),
    "table4-fashion_mnist": ("fashion_mnist", ["mnist", "omniglot"]),
    "offline-mnist": ("mnist", ["fashion_mnist"]),
    "offline-fashion_mnist": ("fashion_mnist", ["mnist"]),
    # Held-out classes of the same dataset (runs with data.id_classes, e.g. preset mnist-0to5-cpu).
    "heldout-mnist": ("mnist", ["held_out_classes"]),
    "heldout-fashion_mnist": ("fashion_mnist", ["held_out_classes"]),
    "table5-cifar10": ("cifar10", ["svhn", "lsun", "tiny_imagenet"]),
    "table5-cifar100": ("cifar100", ["svhn", "lsun", "tiny_imagenet"]),
    "table5-svhn": ("svhn", ["cifar10", "lsun", "tiny_imagenet"]),
}
