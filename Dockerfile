# One image for every storycheck process; the compose file picks the command.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN npm install -g pnpm@12.4.2
COPY . .
RUN pnpm install --frozen-lockfile && pnpm exec turbo run build

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app /app
# Each binary is node itself (no shell wrapper), so SIGTERM reaches the process.
USER node
CMD ["node", "apps/worker/dist/main.js"]
