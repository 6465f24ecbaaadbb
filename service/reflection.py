"""Server reflection under both names clients ask for: grpc.reflection.v1
(current grpcurl, Postman) and grpc.reflection.v1alpha (older clients).
grpcio-reflection ships only v1alpha; v1 has the same messages under another
package, so the same servicer answers it byte for byte, and v1's descriptor
is added to the pool so that reflection can describe itself."""
from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha
from grpc_reflection.v1alpha import reflection_pb2_grpc

V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"


def _add_v1_descriptor(pool) -> None:
    try:
        pool.FindServiceByName(V1_SERVICE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha.DESCRIPTOR.CopyToProto(proto)
    old = "." + v1alpha.DESCRIPTOR.package + "."
    proto.name, proto.package = "grpc/reflection/v1/reflection.proto", V1_PACKAGE
    for message in proto.message_type:
        for f in message.field:
            if f.HasField("type_name"):  # message fields only; setting it on a scalar is an error
                f.type_name = f.type_name.replace(old, f".{V1_PACKAGE}.")
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, f".{V1_PACKAGE}.")
            method.output_type = method.output_type.replace(old, f".{V1_PACKAGE}.")
    pool.Add(proto)


def enable(service_names, server: grpc.Server) -> tuple[str, ...]:
    """Registers reflection v1 and v1alpha for service_names (plus themselves)."""
    pool = descriptor_pool.Default()
    _add_v1_descriptor(pool)
    names = tuple(service_names) + (reflection.SERVICE_NAME, V1_SERVICE)
    servicer = reflection.ReflectionServicer(names, pool=pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1_handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo, request_deserializer=v1alpha.ServerReflectionRequest.FromString,
        response_serializer=v1alpha.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": v1_handler}),))
    return names
