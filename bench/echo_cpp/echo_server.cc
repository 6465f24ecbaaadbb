// The ceiling of a C++ gRPC server (the synchronous API) with annlib's Search
// signature: each call's request is parsed and its query's byte count checked,
// and a prepared answer of k ids and scores is returned, with no search. Beside
// bench/echo_server.py (grpcio's Python server) it shows what a front end off the
// Python interpreter would leave of a search service. Build (Debian:
// apt-get install libgrpc++-dev protobuf-compiler-grpc; run from the repository root):
//
//   mkdir -p build/echo_cpp && protoc -I service/protos --cpp_out=build/echo_cpp \
//       --grpc_out=build/echo_cpp --plugin=protoc-gen-grpc=$(which grpc_cpp_plugin) \
//       annlib/v1/messages.proto annlib/v1/service.proto
//   g++ -O2 -o build/echo_cpp/echo_server bench/echo_cpp/echo_server.cc \
//       build/echo_cpp/annlib/v1/{messages.pb,service.pb,service.grpc.pb}.cc -Ibuild/echo_cpp \
//       $(pkg-config --cflags --libs grpc++ protobuf)
//
//   build/echo_cpp/echo_server PORT DIM K    (PORT 0: any free port; it prints the one bound)
//
// bench/service_load.py --cpp-echo build/echo_cpp/echo_server loads it like the other servers.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "annlib/v1/service.grpc.pb.h"

namespace {

using annlib::v1::ListIndexesRequest;
using annlib::v1::ListIndexesResponse;
using annlib::v1::SearchRequest;
using annlib::v1::SearchResponse;

class EchoSearch final : public annlib::v1::SearchService::Service {
 public:
  EchoSearch(int dim, int k) : query_bytes_(4 * static_cast<size_t>(dim)) {
    for (int i = 0; i < k; ++i) {
      answer_.mutable_neighbors()->add_ids(i);
      answer_.mutable_neighbors()->add_scores(0.5f);
    }
  }

  grpc::Status Search(grpc::ServerContext*, const SearchRequest* request, SearchResponse* response) override {
    if (request->query().data().size() != query_bytes_)  // touch the request as the real server does
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "wrong size");
    *response = answer_;
    return grpc::Status::OK;
  }

  // The load test's clients call it once to connect before the clock starts.
  grpc::Status ListIndexes(grpc::ServerContext*, const ListIndexesRequest*, ListIndexesResponse*) override {
    return grpc::Status::OK;
  }

 private:
  size_t query_bytes_;
  SearchResponse answer_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s PORT DIM K\n", argv[0]);
    return 2;
  }
  EchoSearch service(std::atoi(argv[2]), std::atoi(argv[3]));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(std::string("127.0.0.1:") + argv[1], grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return 1;
  std::printf("echo server listening on 127.0.0.1:%d\nserving echo\n", port);
  std::fflush(stdout);
  server->Wait();  // until killed: the load test terminates it
  return 0;
}
