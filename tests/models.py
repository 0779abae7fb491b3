"""Small models used across tests."""
import torch
import torch.nn as nn


def mlp_bn_dropout() -> nn.Module:
    return nn.Sequential(
        nn.Linear(12, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.2),
        nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3),
    )


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.1),
        )
        self.head = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int = 11, d: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


def data_for(kind: str, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if kind == "mlp":
        x = torch.randn(n, 12, generator=g)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    elif kind == "cnn":
        x = torch.randn(n, 1, 8, 8, generator=g)
        y = (x.mean(dim=(1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    else:
        x = torch.randint(0, 11, (n, 6), generator=g)
        y = (x[:, 0] % 3).long()
    return x, y


MODELS = {"mlp": mlp_bn_dropout, "cnn": SmallCNN, "transformer": TinyTransformer}
