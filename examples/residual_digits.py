"""A residual network built node by node with Graph
===================================================

A small residual network built node by node with ``mdl.Graph``, trained on digits.

Shows how to wire a DAG: ``g.add(name, layer, inputs)`` names every node and the
nodes it reads (``"input"`` is the graph's input), and a skip connection is an
``layers.Add()`` node with two inputs. The output of ``stem_relu`` feeds both the
residual branch and the skip, so in backward the Graph adds the two gradients that
come back to it. Prints ``model.summary(...)`` and the test accuracy.

Run from any folder:  python examples/residual_digits.py [--epochs 10] [--channels 16]
"""
import argparse

import numpy as np

import minidl as mdl
from minidl import layers


def build_resnet(channels=16, seed=0):
    """stem conv -> ReLU -> [conv -> ReLU -> conv] + skip -> ReLU -> pool -> Dense."""
    rng = np.random.default_rng(seed)
    g = mdl.Graph()
    g.add("stem", layers.Conv2D(1, channels, 3, padding="same", rng=rng), "input")
    g.add("stem_relu", layers.ReLU(), "stem")
    # the residual branch: two 3x3 convs that keep the shape (C, 8, 8)
    g.add("conv1", layers.Conv2D(channels, channels, 3, padding="same", rng=rng), "stem_relu")
    g.add("relu1", layers.ReLU(), "conv1")
    g.add("conv2", layers.Conv2D(channels, channels, 3, padding="same", rng=rng), "relu1")
    # the skip connection: stem_relu + conv2 (same shape, element-wise)
    g.add("skip", layers.Add(), ["stem_relu", "conv2"])
    g.add("relu2", layers.ReLU(), "skip")
    g.add("pool", layers.MaxPool2D(2), "relu2")  # (C, 4, 4)
    g.add("flatten", layers.Flatten(), "pool")
    g.add("fc", layers.Dense(channels * 4 * 4, 10, rng=rng), "flatten")  # output: last node added
    return g


def main():
    parser = argparse.ArgumentParser(description="Train a small residual CNN (mdl.Graph) on digits.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args()

    (X_train, y_train), (X_test, y_test) = mdl.data.load_digits(test_size=0.2, seed=0)
    model = build_resnet(args.channels, seed=0)
    print(model.summary((1, 8, 8)))  # the shape of ONE sample, without the batch axis
    print()
    print(model)  # the nodes and the inputs each one reads
    print()

    opt = mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), opt)
    history = trainer.fit(X_train, y_train, epochs=args.epochs, batch_size=32,
                          validation_data=(X_test, y_test), seed=0, progress=False)
    for epoch, (loss, acc) in enumerate(zip(history["loss"], history["val_accuracy"]), start=1):
        print(f"epoch {epoch:2d}/{args.epochs}  train loss {loss:.4f}  test accuracy {acc:.2%}")
    result = trainer.evaluate(X_test, y_test)
    print(f"test loss {result['loss']:.4f}  test accuracy: {result['accuracy']:.2%}")


if __name__ == "__main__":
    main()
