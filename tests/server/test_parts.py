"""The part endpoints (POST /v1/text/encode, /v1/vae/decode, /v1/vae/encode) through the
node pack's client against the real server: text encoding then sampling equals generate
byte for byte, the VAE against the PyTorch goldens (tests/fixtures/make_wan_vae_golden.py),
the decode spread over two CPU ranks equal to one rank bit for bit, generate on two ranks,
and the bad requests each refused at once with a message and no job queued.
Standard library only (no torch), like test_client."""

import json
import os
import shutil
import tempfile
import unittest

import support
from raylight_client import RawTensor, RaylightClient, RaylightError, decode, start_server

FIXTURES = os.path.join(support.ROOT, "tests", "fixtures")
VAE = os.path.join(FIXTURES, "wan_vae_tiny.safetensors")
SMALL = {"width": 64, "height": 64, "frames": 5, "steps": 3}
one = None     # a server on one rank
two = None     # and on two
tmp = None


def setUpModule():
    global one, two, tmp
    support.binary()
    tmp = tempfile.mkdtemp(prefix="raylight_parts_")
    one = start_server(extra_args=["--model", "tiny"])
    two = start_server(ranks=2, device="cpu", extra_args=["--model", "tiny"])
    for s in (one, two):
        for _ in range(600):
            if s.client.model() is not None:
                break
            import time
            time.sleep(0.1)


def tearDownModule():
    for s in (one, two):
        if s is not None:
            assert s.stop() == 0, s.log()
    shutil.rmtree(tmp, ignore_errors=True)


def case():
    with open(os.path.join(FIXTURES, "wan_vae_tiny_case.safetensors"), "rb") as f:
        return decode(f.read())[0]


def floats(raw):
    return raw.to_floats()


def max_diff(a, b):
    fa, fb = floats(a), floats(b)
    assert len(fa) == len(fb), (a, b)
    return max(abs(x - y) for x, y in zip(fa, fb))


def stacked(*raws):
    """[B, ...] of RawTensors of one shape."""
    return RawTensor(raws[0].dtype, (len(raws),) + tuple(raws[0].shape), b"".join(r.data for r in raws))


def jobs(client):
    return len(client.jobs())


class TextEncodeTest(unittest.TestCase):
    def test_encoding_then_sampling_equals_generate(self):
        c = one.client
        pos, neg = c.text_encode("a red fox in the snow"), c.text_encode("")
        self.assertEqual(sorted(pos), ["context"])
        self.assertEqual(pos["context"].shape[-1], c.model()["conditioning"][0]["width"])
        self.assertEqual(c.text_encode("a red fox in the snow")["context"].data, pos["context"].data)
        self.assertNotEqual(c.text_encode("a lighthouse")["context"].data, pos["context"].data)
        direct = c.sample({"context": pos["context"], "negative": neg["context"]}, dict(SMALL, seed=4))
        _, body = c.generate(dict(SMALL, seed=4, prompt="a red fox in the snow", format="latent"))
        self.assertEqual(decode(body)[0]["latent"].data, direct["latent"].data)

    def test_two_ranks_encode_on_rank_0_alone_and_agree(self):
        want = one.client.text_encode("a tram at night")["context"].data
        self.assertEqual(two.client.text_encode("a tram at night")["context"].data, want)


class VaeTest(unittest.TestCase):
    def test_decode_and_encode_match_the_pytorch_golden(self):
        g = case()
        px = one.client.vae_decode(g["latent"], vae=VAE)
        self.assertEqual(tuple(px.shape), tuple(g["video"].shape))
        self.assertLess(max_diff(px, g["video"]), 2e-3)
        mu = one.client.vae_encode(g["input_video"], vae=VAE)
        self.assertEqual(tuple(mu.shape), tuple(g["mu"].shape))
        self.assertLess(max_diff(mu, g["mu"]), 2e-3)
        # A batch is its items, one after another.
        both = one.client.vae_decode(stacked(g["latent"], g["latent"]), vae=VAE)
        self.assertEqual(tuple(both.shape), (2,) + tuple(px.shape))
        self.assertEqual(both.data, px.data + px.data)

    def test_decode_spread_over_two_ranks_equals_one_rank(self):
        g = case()
        for tile in ("16x16", "16x32", None):
            want = one.client.vae_decode(g["latent"], vae=VAE, tile=tile)
            got = two.client.vae_decode(g["latent"], vae=VAE, tile=tile, spread=True)
            self.assertEqual(got.data, want.data, tile)
            alone = two.client.vae_decode(g["latent"], vae=VAE, tile=tile, spread=False)
            self.assertEqual(alone.data, want.data, tile)
        # The Wan VAE's tiles are exact: on CPU ranks tiled equals whole, bit for bit.
        whole = one.client.vae_decode(g["latent"], vae=VAE)
        self.assertEqual(one.client.vae_decode(g["latent"], vae=VAE, tile="16x16").data, whole.data)

    def test_generate_on_two_ranks_decodes_on_both(self):
        # Its decode deals the tiles over both ranks (the collective path of the endpoint
        # above); the video comes back whole.
        kind, data = two.client.generate(dict(SMALL, prompt="a red fox", format="webp"))
        self.assertEqual(kind, "image/webp")
        self.assertEqual(data[:4], b"RIFF")

    def test_decode_of_a_sampled_latent_gives_the_video_size(self):
        c = one.client
        latent = c.sample({}, dict(SMALL, seed=1))["latent"]
        px = c.vae_decode(latent)  # the tiny model's own VAE
        self.assertEqual(tuple(px.shape), (3, 5, 64, 64))
        self.assertTrue(all(-1.0 <= v <= 1.0 for v in floats(px)))
        back = c.vae_encode(px)
        self.assertEqual(tuple(back.shape), tuple(latent.shape))


def tensor_body(name, raw, request=None):
    from raylight_client import encode
    return encode({name: raw}, {"request": json.dumps(request)} if request is not None else None)


def floats_tensor(shape, value=0.0):
    n = 1
    for d in shape:
        n *= d
    return RawTensor.from_floats(shape, [value] * n)


class BadRequestTest(unittest.TestCase):
    def refused(self, path, body, words, content_type="application/octet-stream", status=400):
        c = one.client
        before = jobs(c)
        got, _, data = c.request("POST", path, body, content_type)
        self.assertEqual(got, status, data[:300])
        self.assertIn(words, json.loads(data)["error"])
        self.assertEqual(jobs(c), before, "a refused request was queued")

    def test_decode_requests(self):
        good = floats_tensor((16, 2, 4, 4))
        nan = RawTensor.from_floats((16, 2, 4, 4), [float("nan")] + [0.0] * 511)
        cases = [
            (tensor_body("latent", nan), "NaN or infinite"),
            (tensor_body("latent", floats_tensor((15, 2, 4, 4))), "tensor 'latent' has shape"),
            (tensor_body("latent", floats_tensor((16, 4, 4))), "expected 4 dimensions"),
            (tensor_body("latent", floats_tensor((65, 16, 1, 2, 2))), "at most 64 items"),
            (tensor_body("pixels", good), "unknown tensor 'pixels'"),
            (tensor_body("latent", good, {"vae": "/no/such/vae.safetensors"}), "does not exist"),
            (tensor_body("latent", good, {"colour": 1}), "unknown field \"colour\""),
            (tensor_body("latent", good, {"tile": 256}), "\"tile\" must be a string"),
            (tensor_body("latent", good, {"tile": "7y7"}), "HxW"),
            (tensor_body("latent", good, {"spread": "yes"}), "\"spread\" must be true or false"),
            (tensor_body("latent", good, {"vae": VAE + "\0x"}), "NUL"),
            (tensor_body("latent", RawTensor("I32", (16, 2, 4, 4), bytes(4 * 512))), "send a float type"),
            (tensor_body("latent", RawTensor("BF16", (16, 45, 160, 200), bytes(2 * 16 * 45 * 160 * 200))),
             "MiB per request"),
            (b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", "body"),
        ]
        for body, words in cases:
            with self.subTest(words=words):
                self.refused("/v1/vae/decode", body, words)
        self.refused("/v1/vae/decode", b"", "needs a safetensors body", status=411)
        self.refused("/v1/vae/decode", tensor_body("latent", good), "Content-Type", "application/json", 415)
        self.refused("/v1/vae/decode", tensor_body("latent", good, {"vae": os.path.join(FIXTURES, "umt5_tiny.safetensors")}),
                     "not a")

    def test_encode_requests(self):
        cases = [
            (tensor_body("pixels", floats_tensor((3, 5, 16, 16), 2.0)), "pixels are in [-1, 1]"),
            (tensor_body("pixels", floats_tensor((4, 5, 16, 16))), "send RGB"),
            (tensor_body("pixels", floats_tensor((3, 4, 16, 16))), "4k+1"),
            (tensor_body("pixels", floats_tensor((3, 5, 12, 16))), "multiples of 8"),
            (tensor_body("pixels", floats_tensor((3, 5, 16, 16)), {"tile": "16x16"}), "unknown field \"tile\""),
            (tensor_body("latent", floats_tensor((3, 5, 16, 16))), "unknown tensor 'latent'"),
        ]
        for body, words in cases:
            with self.subTest(words=words):
                self.refused("/v1/vae/encode", body, words)

    def test_text_requests(self):
        for body, words in [({}, "\"prompt\" must be a string"), ({"prompt": 3}, "\"prompt\" must be a string"),
                            ({"prompt": "x", "steps": 3}, "unknown field \"steps\""),
                            ({"prompt": "x", "text_encoder_2": "tiny"}, "has one"),
                            ({"prompt": "x", "text_encoder": "/no/such/t5.safetensors"}, "does not exist"),
                            ({"prompt": "x", "text_encoder": VAE}, "not a"),
                            ({"prompt": "x" * 5000}, "longer than")]:
            with self.subTest(words=words):
                self.refused("/v1/text/encode", json.dumps(body).encode(), words, "application/json")

    def test_the_token_is_checked_before_the_body(self):
        anonymous = RaylightClient(one.client.url)
        for path in ("/v1/vae/decode", "/v1/vae/encode", "/v1/text/encode"):
            status, _, _ = anonymous.request("POST", path, b"x" * 1000, "application/octet-stream")
            self.assertEqual(status, 401, path)


if __name__ == "__main__":
    unittest.main()
