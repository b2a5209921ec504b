/** What an action did, read out as a status; nothing when there is nothing to say. */
export function Note({ text }: { text: string }) {
  if (!text) return null;
  return (
    <p className="note" role="status">
      {text}
    </p>
  );
}
