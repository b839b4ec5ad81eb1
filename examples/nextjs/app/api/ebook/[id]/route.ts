// GET /api/ebook/{id}: the ebook's status and the pages written so far (404 if unknown).
import { ebooks } from "../../../../lib/ebooks.js";

export async function GET(
  _request: Request,
  { params }: { params: Promise<{ id: string }> },
): Promise<Response> {
  const { id } = await params;
  const status = await ebooks().getStatus(id);
  if (status === null) return Response.json({ error: `unknown ebook ${id}` }, { status: 404 });
  const { pages, errors } = await ebooks().getPages(id);
  return Response.json({
    status,
    pages: pages.map(({ pageIndex, pageTitle, content }) => ({ pageIndex, pageTitle, content })),
    errors,
  });
}
