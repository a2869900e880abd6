import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { DispatcherService } from "./gen/weather/v1/dispatcher_pb.js";
import { ReportingService } from "./gen/weather/v1/reporting_pb.js";
import { currentToken } from "./session.js";

export interface Api {
  dispatcher: Client<typeof DispatcherService>;
  reporting: Client<typeof ReportingService>;
}

/**
 * gRPC-Web in binary format (the transport's default) to the page's own origin: Envoy
 * serves the UI and the API from one address, so the browser needs no CORS. The JSON
 * format is not used on purpose: Envoy passes it through and the Python servers reset it.
 */
/** The signed-in person's token on every call, read at call time (sign-in needs no reload). */
const bearer: Interceptor = (next) => (request) => {
  const token = currentToken();
  if (token) request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};

export function createApi(baseUrl: string = window.location.origin): Api {
  const transport = createGrpcWebTransport({ baseUrl, useBinaryFormat: true, interceptors: [bearer] });
  return {
    dispatcher: createClient(DispatcherService, transport),
    reporting: createClient(ReportingService, transport),
  };
}
