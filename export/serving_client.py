#!/usr/bin/env python
"""Query a TF Serving server that serves an exported BAL model (REST or gRPC).

    docker run -p 8500:8500 -p 8501:8501 -v "$PWD/runs/mnist-cpu-seed0/export/serving:/models" \
        tensorflow/serving --model_config_file=/models/models.config
    python export/serving_client.py --rest http://localhost:8501 --images some.png
    python export/serving_client.py --grpc localhost:8500 --images some.png

gRPC needs `pip install grpcio tensorflow-serving-api` (the client only).
"""

import argparse
import json
import sys
import urllib.request
from pathlib import Path

# Run from any checkout: this checkout's bal_tf, not another one installed in the same environment.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    server = parser.add_mutually_exclusive_group(required=True)
    server.add_argument("--rest", help="REST base URL, e.g. http://localhost:8501")
    server.add_argument("--grpc", help="gRPC host:port, e.g. localhost:8500")
    parser.add_argument("--model", default="bal")
    parser.add_argument("--images", nargs="+", required=True, help="image files (converted to the model's shape)")
    parser.add_argument("--shape", default="28,28,1", help="the model's H,W,C (default: 28,28,1)")
    args = parser.parse_args(argv)

    from bal_tf.data import load_dataset, to_numpy
    from bal_tf.export import predict_request, rest_request_body

    shape = tuple(int(v) for v in args.shape.split(","))
    folder = Path(args.images[0]).parent
    images, _ = to_numpy(load_dataset(f"folder:{folder}", image_shape=shape))
    if args.rest:
        body = json.dumps(rest_request_body(images)).encode()
        request = urllib.request.Request(f"{args.rest}/v1/models/{args.model}:predict", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            print(json.dumps(json.load(response), indent=2))
    else:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(args.grpc))
        result = stub.Predict(predict_request(images, args.model), timeout=30)
        print({key: tf.make_ndarray(value).tolist() for key, value in result.outputs.items()})


if __name__ == "__main__":
    main()
