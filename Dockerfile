# One image for every process of the service (api, stage nodes, dashboard); the compose file
# picks the command. Builds the whole workspace like `npm run setup` does.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY libs/contracts/package.json libs/contracts/
COPY libs/model/package.json libs/model/
COPY libs/engine/package.json libs/engine/
COPY libs/testkit/package.json libs/testkit/
COPY prisma/package.json prisma/
COPY apps/stage-node/package.json apps/stage-node/
COPY apps/api/package.json apps/api/
COPY apps/dashboard/package.json apps/dashboard/
RUN npm ci --no-audit --no-fund --include=dev
COPY . .
RUN npm run build
EXPOSE 3000
CMD ["bash", "scripts/start.sh"]
