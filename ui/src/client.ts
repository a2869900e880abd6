import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { DispatcherService } from "./gen/weather/v1/dispatcher_pb.js";
import { ReportingService } from "./gen/weather/v1/reporting_pb.js";

export interface Api {
  dispatcher: Client<typeof DispatcherService>;
  reporting: Client<typeof ReportingService>;
}

/**
 * gRPC-Web in binary format (the transport's default) to the page's own origin: Envoy
 * serves the UI and the API from one address, so the browser needs no CORS. The JSON
 * format is not used on purpose: Envoy passes it through and the Python servers reset it.
 */
export function createApi(baseUrl: string = window.location.origin): Api {
  const transport = createGrpcWebTransport({ baseUrl, useBinaryFormat: true });
  return {
    dispatcher: createClient(DispatcherService, transport),
    reporting: createClient(ReportingService, transport),
  };
}
