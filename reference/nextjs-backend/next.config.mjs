// The smallest config that serves the API: no X-Powered-By, no telemetry at runtime.
/** @type {import('next').NextConfig} */
const nextConfig = {
  poweredByHeader: false,
};

export default nextConfig;
