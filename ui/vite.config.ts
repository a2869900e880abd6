import { defineConfig } from "vite";

// Built files are served by devmesh's static server behind Envoy (same origin as the API),
// so the page needs no CORS. `npm run dev` proxies the API to a running `make up` gateway.
const gateway = "http://127.0.0.1:8080";

export default defineConfig({
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: false },
  server: {
    proxy: {
      "/weather.v1.DispatcherService": gateway,
      "/weather.v1.ReportingService": gateway,
    },
  },
});
