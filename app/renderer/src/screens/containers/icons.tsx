/** Small inline icons for the compact row actions (hidden from screen readers: the buttons carry the names). */
const paths = {
  start: 'M5 3.5v9l7.5-4.5z',
  stop: 'M4 4h8v8H4z',
  restart: 'M12.5 8a4.5 4.5 0 1 1-1.3-3.2M12.5 2.5v2.8H9.7',
  remove: 'M3 4.5h10M6.5 4.5V3h3v1.5M4.5 4.5l.7 8.5h5.6l.7-8.5',
  close: 'M4 4l8 8M12 4l-8 8',
  chevron: 'M5 6l3 3 3-3',
} as const;

export type IconName = keyof typeof paths;

export function Icon({ name }: { name: IconName }) {
  const filled = name === 'start' || name === 'stop';
  return (
    <svg className="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">
      <path
        d={paths[name]}
        fill={filled ? 'currentColor' : 'none'}
        stroke="currentColor"
        strokeWidth={filled ? 0 : 1.5}
        strokeLinecap="round"
        strokeLinejoin="round"
      />
    </svg>
  );
}
