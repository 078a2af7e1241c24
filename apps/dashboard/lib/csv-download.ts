// The answer of every CSV export route (billing, refusals, audit): the file as a download, or,
// when the admin API refuses, its message as plain text: 401 once the session has ended, 400
// when it refused the filters asked for, 502 for anything else it could not answer.
import { ApiError } from '@/lib/errors';

export async function csvDownload(
  filename: string,
  build: () => Promise<{ csv: string; headers?: Record<string, string> }>,
): Promise<Response> {
  try {
    const { csv, headers } = await build();
    return new Response(csv, {
      headers: {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': `attachment; filename="${filename}"`,
        'cache-control': 'no-store',
        ...headers,
      },
    });
  } catch (error) {
    if (error instanceof ApiError) {
      const status = error.code === 'unauthenticated' ? 401 : error.status === 400 ? 400 : 502;
      return new Response(`${error.message}\n`, { status });
    }
    throw error;
  }
}
