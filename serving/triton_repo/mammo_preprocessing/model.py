"""Triton Python-backend adapter: stored pixels + display attributes -> the classifier's input.

Inputs (one view per request): `pixels` int32 [rows, cols] (stored values, decoded and
block-reduced by the client), `attributes` [1] (JSON, PHI-free), `mirror` bool [1].
Output: `image` float32 [1, 1, H, W], H and W from the config's parameters.

All the work is pipelines.imaging.stored.model_input_from_stored, the code training uses.
Built once in initialize(); a bad request gets its own TritonError naming the problem.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from pipelines.imaging.stored import model_input_from_stored, parse_attributes


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})
        try:
            self.height = int(parameters["height"]["string_value"])
            self.width = int(parameters["width"]["string_value"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"config.pbtxt needs integer parameters height and width: {exc}") from exc
        self.label = f"{args['model_name']} v{args['model_version']}"
        # Loads pydicom, scipy and PIL now, so a broken environment fails the load, not a request.
        ramp = np.tile(np.arange(self.width, dtype=np.int32), (self.height, 1))
        model_input_from_stored(ramp, {"PhotometricInterpretation": "MONOCHROME2", "BitsStored": 12,
                                       "PixelRepresentation": 0}, False, self.height, self.width)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                pixels = pb_utils.get_input_tensor_by_name(request, "pixels").as_numpy()
                text = pb_utils.get_input_tensor_by_name(request, "attributes").as_numpy().reshape(-1)[0]
                mirror = pb_utils.get_input_tensor_by_name(request, "mirror").as_numpy().reshape(-1)[0]
                image = model_input_from_stored(pixels, parse_attributes(text), bool(mirror),
                                                self.height, self.width)
                out = pb_utils.Tensor("image", np.ascontiguousarray(image[None, None], dtype=np.float32))
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            except Exception as exc:
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{self.label}: {exc}")))
        return responses
