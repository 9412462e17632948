"""Train the reference CNN on digits, save and reload it
=======================================================

Data, a Sequential model spelled out layer by layer, SGD with momentum, fit / evaluate, save / load.
Run from any folder:  python examples/train_digits.py [--epochs 20] [--out digits_cnn.npz]
"""
import argparse

import numpy as np

import minidl as mdl
from minidl import layers


def main():
    parser = argparse.ArgumentParser(description="Train the reference CNN on digits.")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="digits_cnn.npz", help="where to save the trained model")
    args = parser.parse_args()
    (X_train, y_train), (X_test, y_test) = mdl.data.load_digits(test_size=0.2, seed=0)
    rng = np.random.default_rng(0)
    model = mdl.Sequential(  # input (N, 1, 8, 8)
        layers.Conv2D(1, 16, 3, padding="same", rng=rng), layers.ReLU(), layers.MaxPool2D(2),
        layers.Conv2D(16, 32, 3, padding="same", rng=rng), layers.ReLU(), layers.MaxPool2D(2),
        layers.Flatten(), layers.Dense(32 * 2 * 2, 10, rng=rng))  # 10 logits
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), 0.05, 0.9))
    trainer.fit(X_train, y_train, epochs=args.epochs, batch_size=32,
                validation_data=(X_test, y_test), seed=0)  # a tqdm bar per epoch, on stderr
    print(f"test accuracy: {trainer.evaluate(X_test, y_test)['accuracy']:.2%}")
    model.save(args.out)
    reloaded = mdl.load(args.out)
    same = np.array_equal(model.eval()(X_test), reloaded.eval()(X_test))  # same batch, same bits
    print(f"saved to {args.out}; reloaded model gives identical predictions: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    if main():  # a SystemExit, even SystemExit(0), would also stop the docs build that runs this file
        raise SystemExit(1)
